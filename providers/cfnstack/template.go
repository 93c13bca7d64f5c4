package cfnstack

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/convox-go/convox/internal/awshealth"
	"github.com/convox-go/convox/providers"
)

// The template is rendered from the typed structs of this file and
// encoding/json: no text templates. Only the six resource types the stack
// holds are modelled, with the properties it sets.

// template is a CloudFormation template. Resources decoded from a stack's
// current template stay json.RawMessage; rendered ones are typed.
type template struct {
	AWSTemplateFormatVersion string            `json:"AWSTemplateFormatVersion"`
	Description              string            `json:"Description,omitempty"`
	Metadata                 metadata          `json:"Metadata"`
	Resources                map[string]any    `json:"Resources"`
	Outputs                  map[string]output `json:"Outputs,omitempty"`
}

// metadata holds what the provider needs to render the stack again: the
// routes EnsureRoute put in it (Apply keeps them), who owns the app's log
// group, and nothing secret.
type metadata struct {
	Convox model `json:"Convox"`
}

// model is the stack's own description of its routes and log group.
type model struct {
	App    string           `json:"App"`
	Routes map[string]route `json:"Routes,omitempty"`
	// ExternalLogGroup is the name of the app's log group when the rack's
	// Logs provider owns it (Options.ExternalLogGroup): the stack does not
	// declare it, and its containers log to it by name, creating it when
	// missing (awslogs-create-group). Empty, the stack declares the group
	// (the LogGroup resource, which its containers refer to) and deletes
	// it with the stack; stacks rendered before the choice was recorded
	// are such. The choice is made when the stack is created and kept by
	// every later template, whatever the option says then: a stack update
	// that dropped the LogGroup resource would make CloudFormation delete
	// the group and its logs, and one that added it would fail, the group
	// existing.
	ExternalLogGroup string `json:"ExternalLogGroup,omitempty"`
}

// route is one process's route as rendered in the stack.
type route struct {
	Port                int                   `json:"Port"`
	Protocol            providers.Protocol    `json:"Protocol"`
	Host                string                `json:"Host,omitempty"`
	Path                string                `json:"Path,omitempty"`
	Health              providers.HealthCheck `json:"Health"`
	DeregistrationDelay int                   `json:"DeregistrationDelay"` // seconds
	Priority            int                   `json:"Priority"`
}

type output struct {
	Value any `json:"Value"`
}

// resource is a typed template resource.
type resource struct {
	Type       string   `json:"Type"`
	DependsOn  []string `json:"DependsOn,omitempty"`
	Properties any      `json:"Properties"`
}

// ref and getAtt are the intrinsic functions the template uses.
type ref struct {
	Ref string `json:"Ref"`
}

type logGroupProps struct {
	LogGroupName    string `json:"LogGroupName"`
	RetentionInDays int    `json:"RetentionInDays,omitempty"`
}

type targetGroupProps struct {
	Name                       string     `json:"Name"`
	Port                       int        `json:"Port"`
	Protocol                   string     `json:"Protocol"`
	TargetType                 string     `json:"TargetType"`
	VpcId                      string     `json:"VpcId,omitempty"`
	HealthCheckPath            string     `json:"HealthCheckPath"`
	HealthCheckIntervalSeconds int        `json:"HealthCheckIntervalSeconds,omitempty"`
	HealthCheckTimeoutSeconds  int        `json:"HealthCheckTimeoutSeconds,omitempty"`
	HealthyThresholdCount      int        `json:"HealthyThresholdCount,omitempty"`
	UnhealthyThresholdCount    int        `json:"UnhealthyThresholdCount,omitempty"`
	TargetGroupAttributes      []keyValue `json:"TargetGroupAttributes,omitempty"`
}

type keyValue struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

type listenerRuleProps struct {
	ListenerArn string          `json:"ListenerArn"`
	Priority    int             `json:"Priority"`
	Conditions  []ruleCondition `json:"Conditions"`
	Actions     []ruleAction    `json:"Actions"`
}

type ruleCondition struct {
	Field  string   `json:"Field"`
	Values []string `json:"Values"`
}

type ruleAction struct {
	Type           string `json:"Type"`
	TargetGroupArn ref    `json:"TargetGroupArn"`
}

type taskDefinitionProps struct {
	Family                  string                `json:"Family"`
	Cpu                     string                `json:"Cpu"`
	Memory                  string                `json:"Memory"`
	NetworkMode             string                `json:"NetworkMode"`
	RequiresCompatibilities []string              `json:"RequiresCompatibilities"`
	ExecutionRoleArn        string                `json:"ExecutionRoleArn,omitempty"`
	TaskRoleArn             string                `json:"TaskRoleArn,omitempty"`
	ContainerDefinitions    []containerDefinition `json:"ContainerDefinitions"`
}

type containerDefinition struct {
	Name             string           `json:"Name"`
	Image            string           `json:"Image"`
	Essential        bool             `json:"Essential"`
	Command          []string         `json:"Command,omitempty"`
	Environment      []nameValue      `json:"Environment,omitempty"`
	PortMappings     []portMapping    `json:"PortMappings,omitempty"`
	LogConfiguration logConfiguration `json:"LogConfiguration"`
}

type nameValue struct {
	Name  string `json:"Name"`
	Value string `json:"Value"`
}

type portMapping struct {
	ContainerPort int    `json:"ContainerPort"`
	Protocol      string `json:"Protocol"`
}

type logConfiguration struct {
	LogDriver string         `json:"LogDriver"`
	Options   map[string]any `json:"Options"`
}

type serviceProps struct {
	ServiceName                   string                  `json:"ServiceName"`
	Cluster                       string                  `json:"Cluster"`
	TaskDefinition                ref                     `json:"TaskDefinition"`
	DesiredCount                  int                     `json:"DesiredCount"`
	LaunchType                    string                  `json:"LaunchType"`
	NetworkConfiguration          networkConfiguration    `json:"NetworkConfiguration"`
	DeploymentConfiguration       deploymentConfiguration `json:"DeploymentConfiguration"`
	LoadBalancers                 []serviceLoadBalancer   `json:"LoadBalancers,omitempty"`
	HealthCheckGracePeriodSeconds int                     `json:"HealthCheckGracePeriodSeconds,omitempty"`
}

type networkConfiguration struct {
	AwsvpcConfiguration awsvpcConfiguration `json:"AwsvpcConfiguration"`
}

type awsvpcConfiguration struct {
	Subnets        []string `json:"Subnets"`
	SecurityGroups []string `json:"SecurityGroups,omitempty"`
	AssignPublicIp string   `json:"AssignPublicIp"`
}

type deploymentConfiguration struct {
	MinimumHealthyPercent    int                      `json:"MinimumHealthyPercent"`
	MaximumPercent           int                      `json:"MaximumPercent"`
	DeploymentCircuitBreaker deploymentCircuitBreaker `json:"DeploymentCircuitBreaker"`
}

type deploymentCircuitBreaker struct {
	Enable   bool `json:"Enable"`
	Rollback bool `json:"Rollback"`
}

type serviceLoadBalancer struct {
	ContainerName  string `json:"ContainerName"`
	ContainerPort  int    `json:"ContainerPort"`
	TargetGroupArn any    `json:"TargetGroupArn"` // a string ARN or a ref
}

// Logical IDs. Names are lowercase letters, digits and hyphens, so an
// uppercase X standing for each hyphen keeps IDs alphanumeric and distinct.
func logicalName(process string) string { return strings.ReplaceAll(process, "-", "X") }

const (
	logGroupID     = "LogGroup"
	placeholderID  = "Placeholder"
	outputRelease  = "ConvoxRelease"
	outputToken    = "ConvoxToken"
	outputFormat   = "ConvoxProcesses"
	targetGroupOut = "TargetGroupOf"
)

func targetGroupID(process string) string  { return "TargetGroupOf" + logicalName(process) }
func listenerRuleID(process string) string { return "ListenerRuleOf" + logicalName(process) }
func serviceID(process string) string      { return "ServiceOf" + logicalName(process) }

// taskDefinitionID names a task definition by a hash of its properties:
// a changed definition is a new resource, created before the service is
// updated to it and deleted in the clean-up phase, so a rollback finds the
// previous one intact.
func taskDefinitionID(process string, props taskDefinitionProps) (string, error) {
	b, err := json.Marshal(props)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return "TaskOf" + logicalName(process) + "V" + hex.EncodeToString(sum[:6]), nil
}

// newTemplate returns the base template of a new stack of app: its log
// group, or with Options.ExternalLogGroup no resource and the group's
// name recorded in the metadata. This is where a stack's log group
// choice is made: every later template is its stack's, parsed.
func (s *Stack) newTemplate(app string) *template {
	t := &template{
		AWSTemplateFormatVersion: "2010-09-09",
		Description:              "convox app " + app,
		Metadata:                 metadata{Convox: model{App: app, Routes: map[string]route{}}},
		Resources:                map[string]any{},
		Outputs:                  map[string]output{},
	}
	if s.opts.ExternalLogGroup {
		t.Metadata.Convox.ExternalLogGroup = s.opts.LogGroup(app)
	} else {
		t.Resources[logGroupID] = resource{Type: "AWS::Logs::LogGroup", Properties: logGroupProps{LogGroupName: s.opts.LogGroup(app), RetentionInDays: s.opts.LogRetentionDays}}
	}
	return t
}

// parseTemplate decodes a stack's current template body.
func parseTemplate(body string) (*template, error) {
	var raw struct {
		AWSTemplateFormatVersion string                     `json:"AWSTemplateFormatVersion"`
		Description              string                     `json:"Description"`
		Metadata                 metadata                   `json:"Metadata"`
		Resources                map[string]json.RawMessage `json:"Resources"`
		Outputs                  map[string]output          `json:"Outputs"`
	}
	if err := json.Unmarshal([]byte(body), &raw); err != nil {
		return nil, fmt.Errorf("the stack's template is not one this provider rendered: %w", err)
	}
	if raw.Metadata.Convox.App == "" {
		return nil, fmt.Errorf("the stack's template has no Convox metadata: it was not rendered by this provider")
	}
	t := &template{
		AWSTemplateFormatVersion: raw.AWSTemplateFormatVersion,
		Description:              raw.Description,
		Metadata:                 raw.Metadata,
		Resources:                map[string]any{},
		Outputs:                  raw.Outputs,
	}
	if t.Metadata.Convox.Routes == nil {
		t.Metadata.Convox.Routes = map[string]route{}
	}
	if t.Outputs == nil {
		t.Outputs = map[string]output{}
	}
	for k, v := range raw.Resources {
		t.Resources[k] = v
	}
	return t, nil
}

// body renders the template as JSON. A template holding no resource (a
// stack whose log group is external, with no process and no route) gets
// a placeholder resource, as CloudFormation refuses a template without
// any; the placeholder goes as soon as another resource is there.
func (t *template) body() (string, error) {
	delete(t.Resources, placeholderID)
	if len(t.Resources) == 0 {
		// WaitConditionHandle "has no properties" and does nothing until
		// a WaitCondition refers to it (AWS CloudFormation User Guide,
		// AWS::CloudFormation::WaitConditionHandle).
		t.Resources[placeholderID] = resource{Type: "AWS::CloudFormation::WaitConditionHandle", Properties: map[string]any{}}
	}
	b, err := json.Marshal(t)
	if err != nil {
		return "", err
	}
	if len(b) > maxTemplateBody {
		return "", providers.Invalidf("the stack template is %d bytes; CloudFormation accepts at most %d in a request", len(b), maxTemplateBody)
	}
	return string(b), nil
}

// maxTemplateBody is the largest TemplateBody CloudFormation accepts.
const maxTemplateBody = 51200

// setRoute puts process's target group and listener rule in the template.
func (s *Stack) setRoute(t *template, app, process string, r route) {
	t.Metadata.Convox.Routes[process] = r
	health := r.Health
	tg := targetGroupProps{
		// "<app>-<process>-cf": never the name of albbalancer's group of
		// the same route, so both can exist while an app migrates.
		Name: providers.ResourceName(app, process, "cf"),
		// Targets register with their container port: the group's own
		// port is only a default, fixed so that a port change never
		// replaces the group (a named group cannot be replaced in place).
		Port: 80, Protocol: "HTTP", TargetType: "ip", VpcId: s.opts.VPC,
		HealthCheckPath:            cmpOr(health.Path, "/"),
		HealthCheckIntervalSeconds: seconds(health.Interval),
		HealthCheckTimeoutSeconds:  seconds(health.Timeout),
		HealthyThresholdCount:      health.Healthy,
		UnhealthyThresholdCount:    health.Unhealthy,
		TargetGroupAttributes: []keyValue{
			{Key: "deregistration_delay.timeout_seconds", Value: strconv.Itoa(r.DeregistrationDelay)},
		},
	}
	var conds []ruleCondition
	if r.Host != "" {
		conds = append(conds, ruleCondition{Field: "host-header", Values: []string{r.Host}})
	}
	if p := strings.TrimSuffix(r.Path, "/"); p != "" {
		conds = append(conds, ruleCondition{Field: "path-pattern", Values: []string{p, p + "/*"}})
	} else if r.Path == "/" {
		conds = append(conds, ruleCondition{Field: "path-pattern", Values: []string{"/*"}})
	}
	listener := s.opts.HTTPListener
	if r.Protocol != providers.HTTP {
		listener = s.opts.HTTPSListener
	}
	t.Resources[targetGroupID(process)] = resource{Type: "AWS::ElasticLoadBalancingV2::TargetGroup", Properties: tg}
	t.Resources[listenerRuleID(process)] = resource{Type: "AWS::ElasticLoadBalancingV2::ListenerRule", Properties: listenerRuleProps{
		ListenerArn: listener, Priority: r.Priority, Conditions: conds,
		Actions: []ruleAction{{Type: "forward", TargetGroupArn: ref{Ref: targetGroupID(process)}}},
	}}
	t.Outputs[targetGroupOut+logicalName(process)] = output{Value: ref{Ref: targetGroupID(process)}}
}

// removeRoute takes process's route out of the template.
func removeRoute(t *template, process string) {
	delete(t.Metadata.Convox.Routes, process)
	delete(t.Resources, targetGroupID(process))
	delete(t.Resources, listenerRuleID(process))
	delete(t.Outputs, targetGroupOut+logicalName(process))
}

// isService reports whether a logical ID is one of the process resources
// Apply renders (services and task definitions).
func isService(id string) bool {
	return strings.HasPrefix(id, "ServiceOf") || strings.HasPrefix(id, "TaskOf")
}

// setProcesses replaces the template's services and task definitions with
// those of d, and records d's release, token and formation in the outputs.
// outputs are the stack's current outputs, which name the ARNs of its
// target groups: a binding to one of them becomes a reference.
func (s *Stack) setProcesses(t *template, d providers.Desired, outputs map[string]string) error {
	for id := range t.Resources {
		if isService(id) {
			delete(t.Resources, id)
		}
	}
	env := environment(d.Env)
	var formation []string
	for _, p := range d.Processes {
		formation = append(formation, p.Name+"="+strconv.Itoa(p.Count))
		td := s.taskDefinition(d.App, p, d.Image, env, t.Metadata.Convox.ExternalLogGroup)
		tdID, err := taskDefinitionID(p.Name, td)
		if err != nil {
			return err
		}
		t.Resources[tdID] = resource{Type: "AWS::ECS::TaskDefinition", Properties: td}
		svc := serviceProps{
			ServiceName: providers.ResourceName(d.App, p.Name, ""), Cluster: s.opts.Cluster,
			TaskDefinition: ref{Ref: tdID}, DesiredCount: p.Count, LaunchType: "FARGATE",
			NetworkConfiguration: networkConfiguration{AwsvpcConfiguration: awsvpcConfiguration{
				Subnets: s.opts.Subnets, SecurityGroups: s.opts.SecurityGroups, AssignPublicIp: cmpOr(s.opts.AssignPublicIP, "DISABLED"),
			}},
			DeploymentConfiguration: deploymentConfiguration{
				MinimumHealthyPercent: 100, MaximumPercent: 200,
				DeploymentCircuitBreaker: deploymentCircuitBreaker{Enable: true, Rollback: true},
			},
		}
		var deps []string
		for _, b := range d.Bindings[p.Name] {
			var target any = b.Target
			if _, ok := t.Metadata.Convox.Routes[p.Name]; ok && b.Target != "" && b.Target == outputs[targetGroupOut+logicalName(p.Name)] {
				target = ref{Ref: targetGroupID(p.Name)}
				deps = append(deps, listenerRuleID(p.Name))
			}
			svc.LoadBalancers = append(svc.LoadBalancers, serviceLoadBalancer{ContainerName: p.Name, ContainerPort: cmpOr(b.Port, p.Port), TargetGroupArn: target})
		}
		if len(svc.LoadBalancers) > 0 {
			svc.HealthCheckGracePeriodSeconds = seconds(p.Health.Grace)
		}
		t.Resources[serviceID(p.Name)] = resource{Type: "AWS::ECS::Service", DependsOn: deps, Properties: svc}
	}
	t.Outputs[outputRelease] = output{Value: d.Release}
	t.Outputs[outputToken] = output{Value: d.Token}
	t.Outputs[outputFormat] = output{Value: cmpOr(strings.Join(formation, ","), "-")}
	return nil
}

// environment returns env as a task definition's variables, sorted.
func environment(env map[string]string) []nameValue {
	out := make([]nameValue, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, nameValue{Name: k, Value: env[k]})
	}
	return out
}

// taskDefinition renders the task definition of app's process p running
// img with env (from environment): the one Apply puts in the stack, whose
// log configuration refers to the stack's log group, or with an external
// log group (the stack's ExternalLogGroup) names that group and creates
// it when missing. RunTask renders the same to find it in the stack.
func (s *Stack) taskDefinition(app string, p providers.Process, img providers.Image, env []nameValue, externalLogGroup string) taskDefinitionProps {
	logs := map[string]any{"awslogs-group": ref{Ref: logGroupID}, "awslogs-region": s.opts.Region, "awslogs-stream-prefix": p.Name}
	if externalLogGroup != "" {
		// "Specify whether you want the log group to be created
		// automatically. [...] Your IAM policy must include the
		// logs:CreateLogGroup permission" (Amazon ECS API Reference,
		// LogConfiguration): the execution role's (ExecutionRoleActions).
		logs["awslogs-group"], logs[awslogsCreateGroup] = externalLogGroup, "true"
	}
	c := containerDefinition{
		Name: p.Name, Image: img.Ref(), Essential: true, Command: p.Command,
		Environment:      env,
		LogConfiguration: logConfiguration{LogDriver: "awslogs", Options: logs},
	}
	if p.Port > 0 {
		c.Environment = append(slices.Clone(env), nameValue{Name: "PORT", Value: strconv.Itoa(p.Port)})
		c.PortMappings = []portMapping{{ContainerPort: p.Port, Protocol: "tcp"}}
	}
	return taskDefinitionProps{
		Family: s.opts.Cluster + "-" + app + "-" + p.Name,
		Cpu:    strconv.Itoa(cmpOr(p.CPU, 256)), Memory: strconv.Itoa(cmpOr(p.Memory, 512)),
		NetworkMode: "awsvpc", RequiresCompatibilities: []string{"FARGATE"},
		ExecutionRoleArn: s.opts.ExecutionRoleARN, TaskRoleArn: s.opts.TaskRoleARN,
		ContainerDefinitions: []containerDefinition{c},
	}
}

// awslogsCreateGroup is the awslogs option that makes ECS create a
// missing log group.
const awslogsCreateGroup = "awslogs-create-group"

// seconds converts d to whole seconds, rounding up as the balancers do.
func seconds(d time.Duration) int { return int(awshealth.Seconds(d)) }

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
