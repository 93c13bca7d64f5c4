package providers

import (
	"context"
	"time"
)

// ChangeAction says what a platform would do to one resource.
type ChangeAction string

// Change actions.
const (
	ChangeAdd    ChangeAction = "add"
	ChangeModify ChangeAction = "modify"
	ChangeRemove ChangeAction = "remove"
)

// Replacement says whether modifying a resource replaces it.
type Replacement string

// Replacements. ReplacementNone is also the value of every action other
// than ChangeModify.
const (
	ReplacementNone        Replacement = ""
	ReplacementNo          Replacement = "no"
	ReplacementYes         Replacement = "yes"
	ReplacementConditional Replacement = "conditional" // depends on values known only when applied
)

// ResourceChange is one change a platform would make to one resource of
// an app if a Desired were applied.
type ResourceChange struct {
	// Resource is the platform's name for the resource (a CloudFormation
	// logical ID) and Type its type (AWS::ECS::Service).
	Resource string
	Type     string
	Action   ChangeAction
	// Replacement is set for ChangeModify.
	Replacement Replacement
	// Scopes lists what of the resource changes (Properties, Tags, ...),
	// sorted; it never holds values.
	Scopes []string
}

// ChangePlanner is a Scheduler that can say what applying a Desired would
// change, resource by resource, before anything is applied.
//
// Contract: PlanChanges validates d as Apply would, changes nothing that
// runs or serves (no rollout is started, no resource is created, modified
// or deleted) and leaves nothing behind (any intermediate object the
// platform needs, such as a change set, is deleted before it returns,
// even when ctx ends). The result is ordered by Resource; an empty result
// means applying d changes no resource. For an app the platform does not
// hold yet, every resource of d is a ChangeAdd. Errors follow the package
// rules: ErrInvalid for a d Apply would refuse, temporary errors for
// throttling and outages.
type ChangePlanner interface {
	PlanChanges(ctx context.Context, d Desired) ([]ResourceChange, error)
}

// ResourceDrift is one resource of an app that differs from what the
// platform last applied.
type ResourceDrift struct {
	// Resource and Type are as in ResourceChange.
	Resource string
	Type     string
	// Status is "MODIFIED" or "DELETED".
	Status string
	// Properties lists the paths of the properties that differ, each with
	// how ("/DesiredCount NOT_EQUAL"), sorted; never their values, which
	// may be environment values.
	Properties []string
}

// DriftDetector is a Scheduler that can detect changes made to an app's
// resources outside it.
//
// Contract: DetectDrift changes no resource; it returns the resources
// modified or deleted since the platform last applied the app, ordered by
// Resource, and an empty result when nothing drifted. An app the platform
// does not hold is ErrNotFound; a detection the platform could not finish
// is ErrUnavailable with its reason.
type DriftDetector interface {
	DetectDrift(ctx context.Context, app string) ([]ResourceDrift, error)
}

// PlatformEvent is one event the platform recorded while applying an
// app's rollouts (a CloudFormation stack event).
type PlatformEvent struct {
	Time time.Time
	// Resource is the platform's name for the resource the event is about
	// and Type its type.
	Resource string
	Type     string
	// Status is the platform's status of the resource (UPDATE_IN_PROGRESS,
	// UPDATE_FAILED, ...) and Reason its explanation, when it gives one.
	Status string
	Reason string
}

// EventReporter is a Scheduler that records its own events while it
// applies a rollout, for the deployer to show.
//
// Contract: RolloutEvents returns the app's events at or after since,
// oldest first, and changes nothing. Two calls return the same event
// identically (same Time, Resource, Status and Reason), so that a caller
// polling with an overlapping since can drop the ones it has seen. An app
// the platform does not hold is ErrNotFound.
type EventReporter interface {
	RolloutEvents(ctx context.Context, app string, since time.Time) ([]PlatformEvent, error)
}
