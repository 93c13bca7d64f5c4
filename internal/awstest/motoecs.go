package awstest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/url"
	"strconv"

	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// MotoRunsFargateTasks adapts a client's ECS and CloudFormation calls to
// two departures of moto's ECS from AWS in one-off tasks, and changes
// nothing else. Its signature fits aws.Config.APIOptions.
//
//   - moto's RunTask fails (HTTP 500) for a task definition whose
//     container has no memory of its own. AWS requires none on Fargate:
//     "If using the Fargate launch type, this parameter is optional"
//     (Amazon ECS API Reference, ContainerDefinition, memory). Before a
//     request is signed, the containers of a RegisterTaskDefinition, and
//     those of the AWS::ECS::TaskDefinition resources of a CreateStack or
//     UpdateStack template, get their task's memory.
//   - moto returns a task's container cpu and memory as JSON numbers; AWS
//     returns strings (Amazon ECS API Reference, Container: cpu, memory
//     "Type: String"), and the SDK refuses numbers. The responses of
//     RunTask, DescribeTasks and StopTask get them as strings.
//
// MotoFargateRequest and MotoFargateResponse make the same changes to the
// bodies of requests and responses, for a proxy in front of moto serving
// clients this package does not build.
func MotoRunsFargateTasks(stack *middleware.Stack) error {
	err := stack.Build.Add(middleware.BuildMiddlewareFunc("awstest.MotoContainerMemory",
		func(ctx context.Context, in middleware.BuildInput, next middleware.BuildHandler) (middleware.BuildOutput, middleware.Metadata, error) {
			req, ok := in.Request.(*smithyhttp.Request)
			op := middleware.GetOperationName(ctx)
			if !ok || !fargateRequests[op] {
				return next.HandleBuild(ctx, in)
			}
			body, err := io.ReadAll(req.GetStream())
			if err != nil {
				return middleware.BuildOutput{}, middleware.Metadata{}, err
			}
			body = MotoFargateRequest(op, body)
			if req, err = req.SetStream(bytes.NewReader(body)); err != nil {
				return middleware.BuildOutput{}, middleware.Metadata{}, err
			}
			in.Request = req
			return next.HandleBuild(ctx, in)
		}), middleware.Before)
	if err != nil {
		return err
	}
	return stack.Deserialize.Add(middleware.DeserializeMiddlewareFunc("awstest.MotoContainerStrings",
		func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
			out, md, err := next.HandleDeserialize(ctx, in)
			op := middleware.GetOperationName(ctx)
			if !fargateResponses[op] {
				return out, md, err
			}
			resp, ok := out.RawResponse.(*smithyhttp.Response)
			if err != nil || !ok || resp.StatusCode != 200 {
				return out, md, err
			}
			body, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr != nil {
				return out, md, rerr
			}
			body = MotoFargateResponse(op, body)
			resp.Body = io.NopCloser(bytes.NewReader(body))
			resp.ContentLength = int64(len(body))
			return out, md, nil
		}), middleware.After)
}

// fargateRequests and fargateResponses are the operations whose requests
// and responses MotoRunsFargateTasks changes.
var (
	fargateRequests  = map[string]bool{"RegisterTaskDefinition": true, "CreateStack": true, "UpdateStack": true}
	fargateResponses = map[string]bool{"RunTask": true, "DescribeTasks": true, "StopTask": true}
)

// MotoFargateRequest returns the body of a request of the ECS or
// CloudFormation operation op (its name: "RegisterTaskDefinition",
// "CreateStack", ...) as MotoRunsFargateTasks sends it to moto: the
// containers of a task definition get their task's memory. The body of
// any other operation, or one it cannot read, is returned unchanged.
func MotoFargateRequest(op string, body []byte) []byte {
	switch {
	case !fargateRequests[op]:
		return body
	case op == "RegisterTaskDefinition":
		return registerWithContainerMemory(body)
	}
	return stackWithContainerMemory(body)
}

// MotoFargateResponse returns the body of moto's successful response to
// the ECS operation op as MotoRunsFargateTasks returns it to the client:
// the cpu and memory of the tasks' containers are strings. The body of
// any other operation is returned unchanged.
func MotoFargateResponse(op string, body []byte) []byte {
	if !fargateResponses[op] {
		return body
	}
	return containerFieldsAsStrings(body)
}

// registerWithContainerMemory gives a RegisterTaskDefinition request's
// containers without memory the task's memory.
func registerWithContainerMemory(body []byte) []byte {
	var in map[string]any
	if json.Unmarshal(body, &in) != nil {
		return body
	}
	mem, err := strconv.Atoi(toString(in["memory"]))
	if err != nil {
		return body
	}
	defs, _ := in["containerDefinitions"].([]any)
	for _, d := range defs {
		if c, ok := d.(map[string]any); ok && c["memory"] == nil {
			c["memory"] = mem
		}
	}
	if b, err := json.Marshal(in); err == nil {
		return b
	}
	return body
}

// stackWithContainerMemory does the same for the task definitions of the
// template of a CreateStack or UpdateStack request (a form).
func stackWithContainerMemory(body []byte) []byte {
	form, err := url.ParseQuery(string(body))
	if err != nil || form.Get("TemplateBody") == "" {
		return body
	}
	var t map[string]any
	if json.Unmarshal([]byte(form.Get("TemplateBody")), &t) != nil {
		return body
	}
	resources, _ := t["Resources"].(map[string]any)
	for _, r := range resources {
		res, _ := r.(map[string]any)
		if res["Type"] != "AWS::ECS::TaskDefinition" {
			continue
		}
		props, _ := res["Properties"].(map[string]any)
		mem, err := strconv.Atoi(toString(props["Memory"]))
		if err != nil {
			continue
		}
		defs, _ := props["ContainerDefinitions"].([]any)
		for _, d := range defs {
			if c, ok := d.(map[string]any); ok && c["Memory"] == nil {
				c["Memory"] = mem
			}
		}
	}
	b, err := json.Marshal(t)
	if err != nil {
		return body
	}
	form.Set("TemplateBody", string(b))
	return []byte(form.Encode())
}

// containerFieldsAsStrings turns the numeric cpu and memory of the
// containers of the tasks (or task) of an ECS response into strings.
func containerFieldsAsStrings(body []byte) []byte {
	var out map[string]any
	if json.Unmarshal(body, &out) != nil {
		return body
	}
	tasks, _ := out["tasks"].([]any)
	if t, ok := out["task"]; ok {
		tasks = append(tasks, t)
	}
	for _, t := range tasks {
		tm, _ := t.(map[string]any)
		cs, _ := tm["containers"].([]any)
		for _, c := range cs {
			cm, _ := c.(map[string]any)
			for _, k := range []string{"cpu", "memory", "memoryReservation"} {
				if n, ok := cm[k].(float64); ok {
					cm[k] = strconv.FormatFloat(n, 'f', -1, 64)
				}
			}
		}
	}
	if b, err := json.Marshal(out); err == nil {
		return b
	}
	return body
}

func toString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return ""
}
