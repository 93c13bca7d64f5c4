// Package fake is a coherent, deterministic, in-memory rack: one Rack
// whose Registry, Scheduler, Balancers, Logs, Store and Notifier share one
// state, implement every provider interface of package providers and every
// optional one, pass the providertest conformance suite, and let tests
// inject faults and inspect every call.
//
// # Coherence
//
// The providers of one Rack observe each other the way a real rack's do:
//
//   - the Scheduler runs only images that were pushed to the Registry
//     (Rack.Push); tasks of any other image stop with a
//     CannotPullContainerError reason;
//   - scheduler tasks of a process with a Port, applied with a binding of
//     a Balancer route (Route.Binding or WeightShifter.EnsureTargetSet),
//     become that route's targets in Balancer.Health: initial while
//     pending, healthy once running (unhealthy for a release scripted with
//     FailHealth), draining while being replaced;
//   - a rack has one default balancer (Rack.Balancer, named
//     Options.BalancerName) and any number of additional named ones
//     (Options.Balancers, Rack.BalancerNamed), each with its own routes;
//     the Scheduler accepts bindings of all of them, so one process bound
//     to routes of two balancers — an app moving from "elb" to "alb" — has
//     its tasks as targets of both, each balancer reporting their health;
//   - every task writes to Logs (or to Options.TaskLogs) under Stream =
//     task ID, with Process and Release set: a start line "starting
//     <command>" when it runs, and for a crash-looping release "panic:
//     boom" before it stops with ExitCode 2 and Reason "exit status 2"; a
//     one-off task (TaskRunner) writes its scripted output lines and stops
//     with its scripted exit code.
//
// # The rollout step model
//
// Rollouts advance on observation, never on wall-clock time. Apply accepts
// a rollout (state in-progress, nothing started yet) and every Status call
// for the app — and every StatusMany call that names it — first advances
// the app's in-flight rollout by exactly one step, then reports:
//
//  1. start: Count new tasks of every process of the release are created,
//     pending; tasks with a Port join their bound target sets as initial.
//     A rollout scripted with NeverConverge (of its app) or
//     NeverConvergeRelease (of its release) stays at this step until the
//     script is undone.
//  2. run: the pending tasks start. Each writes its start line and becomes
//     running; bound targets turn healthy (unhealthy with FailHealth).
//     If the image was never pushed, or the release or image digest is
//     scripted with CrashLoop, the tasks stop instead, each crash is
//     counted, and the next observation goes back to step 1 (replacement
//     tasks); with Options.CircuitBreaker set, the rollout fails once that
//     many tasks have crashed.
//  3. drain: once every bound target of the new tasks is healthy, the
//     targets of the tasks being replaced turn draining (those tasks still
//     run). With an unhealthy target the rollout stays at this step.
//  4. complete: the replaced tasks stop (ExitCode 0, Reason "scaled down by
//     rollout <id>"), their targets are removed, the rollout is completed
//     and AppStatus.Release becomes the release.
//
// So, without scripted faults, the fourth observation after Apply reports
// the release as AppStatus.Release. Applying while a rollout is in flight
// cancels it ("superseded by rollout <id>"); the new rollout replaces every
// task of the app. Re-applying the same release with other bindings (a
// route of a second balancer added, or the first one's removed) is such a
// rollout too: its new tasks join the new bindings at step 1 while the
// replaced tasks serve their old bindings until step 3, so every route the
// new bindings keep has a healthy target at every observation. A failed or canceled rollout stops its own tasks and the
// app keeps running what ran before it (the replaced tasks were never
// stopped: they only stop in step 4).
//
// A staged release (Stager.Stage) advances beside the serving one through
// steps 1 and 2 on the same observations; the observation after step 2
// marks it completed if its bound targets are healthy. It never drains or
// stops serving tasks, and its processes are listed after the serving ones
// of the same name. PromoteStage hands the staged rollout, tasks and all,
// to the serving side, in progress again at the step it reached: for a
// running stage the next observation is step 3 (the replaced tasks drain),
// the one after step 4 (they stop and AppStatus.Release becomes the staged
// release). DiscardStage, CancelRollout of the staged
// rollout, or an Apply of a new serving release stop the staged tasks.
//
// One-off tasks (TaskRunner) are not part of AppStatus and advance on
// GetTask: RunTask returns a pending task, the first GetTask shows it
// running (its output lines are written then), the second shows it stopped
// with its exit code.
//
// # Faults and calls
//
// Hooks intercept any provider method with a typed function that receives
// the original implementation as next, in the manner of controller-runtime's
// interceptor package, and Hooks.Call intercepts every method at once.
// Hooks compose in layers: Options.Hooks is the first layer and each
// Rack.AddHooks adds one around the layers before it, so the layer added
// last runs outermost (first), and its next runs the layer added before
// it. AddHooks returns a function that removes its layer; Rack.SetHooks
// replaces every layer with one.
//
// The scripted behaviours cover the common cases without writing a hook,
// and each returns a function that undoes it (pass it to t.Cleanup, or call
// it mid-test to let the rack recover):
//
//   - Fail and Throttle fail the next n calls of one method;
//   - CrashLoop and FailHealth target one release, by release ID or image
//     digest;
//   - NeverConverge stalls every rollout of an app (the SDK's rollback
//     too), NeverConvergeRelease only the rollouts of one release, so "R2
//     never converges but the rollback to R1 does" needs no hook;
//   - ExitCode scripts one-off tasks.
//
// Typed Balancer hooks and scripted faults apply to every balancer of the
// rack; a recorded Call names its balancer in Call.Balancer. Calls records
// every provider call in order, with its key arguments and its error;
// secret values never appear in a recorded call's printed form.
//
// # Another Logs provider
//
// A test may plug another Logs provider into the SDK's rack (a log backend
// under test, or a wrapper around the fake's). Options.TaskLogs sends the
// tasks' output there instead of to the rack's own Logs, so what the SDK
// reads back, DeployError.LastLogLines included, holds it. Package
// convoxtest builds a convox.Rack from a fake Rack (Rack.TaskLogs as its
// Logs) in one call.
//
// Every method honors a canceled context by returning the context's error,
// and a Rack is safe for concurrent use. The clock is Options.Now, time.Now
// by default, so a Rack created inside a testing/synctest bubble runs on the
// bubble's fake time.
package fake
