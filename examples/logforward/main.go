// Command logforward deploys the log forwarder of package logforward to AWS
// Lambda and subscribes an app's logs to it, so that a crash loop in the
// app reaches a webhook (or Slack, Mattermost, Rocket.Chat) as one alert:
//
//	go run ./examples/logforward -app shop \
//		-role arn:aws:iam::123456789012:role/logforward-lambda \
//		-webhook-url https://hooks.example.com/convox
//
// with the webhook's HMAC secret in LOGFORWARD_WEBHOOK_SECRET. It
//
//  1. builds ./examples/logforward/handler for the provided.al2023 runtime
//     (GOOS=linux, GOARCH=arm64, CGO_ENABLED=0, the binary named bootstrap,
//     tag lambda.norpc) and zips it;
//  2. creates the Lambda function (-function, default "convox-logforward"),
//     or updates its code and configuration when it exists, and waits until
//     it is ready;
//  3. allows CloudWatch Logs to invoke it for the app's log group
//     (lambda:AddPermission, principal logs.amazonaws.com, the group's ARN
//     as source);
//  4. subscribes the app's logs to it with the filter pattern (-pattern,
//     default "?panic ?FATAL"), which the handler applies again.
//
// With -test-alert it then writes one matching line to the app's logs
// through cwlogs; the function receives it within seconds and the webhook
// gets the alert.
//
// The role is the function's execution role; it needs only the AWS managed
// policy AWSLambdaBasicExecutionRole. The caller needs lambda:GetFunction,
// CreateFunction, UpdateFunctionCode, UpdateFunctionConfiguration,
// AddPermission, iam:PassRole on the role, and cwlogs.Permissions().
// Credentials and region come from the standard AWS configuration;
// AWS_ENDPOINT_URL redirects the clients (an emulator).
package main

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/convox-go/convox/internal/awserr"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/cwlogs"
)

// settings are the command's flags.
type settings struct {
	app, function, role, pattern string
	webhookURL, slackURL         string
	webhookSecret                string
	testAlert                    bool
}

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("logforward", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var s settings
	fs.StringVar(&s.app, "app", "", "the app whose logs are forwarded (required)")
	fs.StringVar(&s.function, "function", "convox-logforward", "the Lambda function's name")
	fs.StringVar(&s.role, "role", "", "the function's execution role ARN (required)")
	fs.StringVar(&s.pattern, "pattern", "?panic ?FATAL", "the filter pattern of the subscription and of the alerts")
	fs.StringVar(&s.webhookURL, "webhook-url", "", "alerts as signed webhook deliveries (secret in LOGFORWARD_WEBHOOK_SECRET)")
	fs.StringVar(&s.slackURL, "slack-url", "", "alerts to a Slack-compatible incoming webhook")
	fs.BoolVar(&s.testAlert, "test-alert", false, "write one matching line to the app's logs after deploying")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	s.webhookSecret = getenv("LOGFORWARD_WEBHOOK_SECRET")
	if err := s.validate(); err != nil {
		fmt.Fprintln(stderr, "logforward:", err)
		return 2
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "logforward: AWS configuration:", err)
		return 1
	}
	if err := deploy(ctx, s, lambda.NewFromConfig(cfg), cloudwatchlogs.NewFromConfig(cfg), stdout); err != nil {
		fmt.Fprintln(stderr, "logforward:", err)
		return 1
	}
	return 0
}

func (s settings) validate() error {
	if err := providers.ValidateName("app", s.app, providers.MaxAppName); err != nil {
		return fmt.Errorf("-app: %w", err)
	}
	if !strings.HasPrefix(s.role, "arn:") || !strings.Contains(s.role, ":role/") {
		return errors.New("-role must be an IAM role ARN")
	}
	if s.webhookURL == "" && s.slackURL == "" {
		return errors.New("give -webhook-url or -slack-url: the alerts need somewhere to go")
	}
	if s.webhookURL != "" && s.webhookSecret == "" {
		return errors.New("-webhook-url needs LOGFORWARD_WEBHOOK_SECRET in the environment")
	}
	return nil
}

// environment is the function's configuration (see the handler's
// documentation).
func (s settings) environment() map[string]string {
	env := map[string]string{"LOGFORWARD_PATTERN": s.pattern}
	if s.webhookURL != "" {
		env["LOGFORWARD_WEBHOOK_URL"], env["LOGFORWARD_WEBHOOK_SECRET"] = s.webhookURL, s.webhookSecret
	}
	if s.slackURL != "" {
		env["LOGFORWARD_SLACK_URL"] = s.slackURL
	}
	return env
}

// LambdaAPI is the part of the Lambda client the deploy uses.
type LambdaAPI interface {
	lambda.GetFunctionAPIClient
	CreateFunction(context.Context, *lambda.CreateFunctionInput, ...func(*lambda.Options)) (*lambda.CreateFunctionOutput, error)
	UpdateFunctionCode(context.Context, *lambda.UpdateFunctionCodeInput, ...func(*lambda.Options)) (*lambda.UpdateFunctionCodeOutput, error)
	UpdateFunctionConfiguration(context.Context, *lambda.UpdateFunctionConfigurationInput, ...func(*lambda.Options)) (*lambda.UpdateFunctionConfigurationOutput, error)
	AddPermission(context.Context, *lambda.AddPermissionInput, ...func(*lambda.Options)) (*lambda.AddPermissionOutput, error)
}

func deploy(ctx context.Context, s settings, lc LambdaAPI, logsAPI cwlogs.API, out io.Writer) error {
	code, err := build(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "built the handler for provided.al2023 (arm64): %d bytes zipped\n", len(code))
	arn, err := ensureFunction(ctx, s, lc, code)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "function %s is ready\n", arn)
	logs := cwlogs.New(logsAPI, nil)
	// arn:aws:lambda:<region>:<account>:function:<name>
	parts := strings.Split(arn, ":")
	if len(parts) < 7 {
		return fmt.Errorf("the function's ARN %q has an unexpected form", arn)
	}
	group := fmt.Sprintf("arn:%s:logs:%s:%s:log-group:%s:*", parts[1], parts[3], parts[4], logs.Group(s.app))
	_, err = lc.AddPermission(ctx, &lambda.AddPermissionInput{
		FunctionName:  aws.String(s.function),
		StatementId:   aws.String("convox-logs-" + s.app),
		Action:        aws.String("lambda:InvokeFunction"),
		Principal:     aws.String("logs.amazonaws.com"),
		SourceArn:     aws.String(group),
		SourceAccount: aws.String(parts[4]),
	})
	if err != nil && awserr.Code(err) != "ResourceConflictException" {
		return awserr.Wrap("allow CloudWatch Logs to invoke "+s.function, err)
	}
	sub, err := logs.Subscribe(ctx, s.app, providers.Subscription{Name: "logforward", Destination: arn, Pattern: s.pattern})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "app %s: subscription %q forwards lines matching %q to %s\n", s.app, sub.Name, sub.Pattern, s.function)
	if s.testAlert {
		line := providers.LogEntry{App: s.app, Process: "logforward", Stream: "test", Message: "panic: a test alert from examples/logforward"}
		if err := logs.Write(ctx, []providers.LogEntry{line}); err != nil {
			return fmt.Errorf("write the test line: %w", err)
		}
		fmt.Fprintf(out, "wrote a test line to %s; the alert should reach the webhook within seconds\n", logs.Group(s.app))
	}
	return nil
}

// build compiles the handler for provided.al2023 on arm64 and returns a
// zip holding it as "bootstrap".
func build(ctx context.Context) ([]byte, error) {
	dir, err := os.MkdirTemp("", "logforward-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "bootstrap")
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", "lambda.norpc", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	cmd.Dir = handlerDir()
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build the handler: %w\n%s", err, msg)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	var zipped bytes.Buffer
	zw := zip.NewWriter(&zipped)
	h := &zip.FileHeader{Name: "bootstrap", Method: zip.Deflate}
	h.SetMode(0o755)
	w, err := zw.CreateHeader(h)
	if err == nil {
		_, err = w.Write(data)
	}
	if err == nil {
		err = zw.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("zip the handler: %w", err)
	}
	return zipped.Bytes(), nil
}

// handlerDir finds the handler's source next to this file.
func handlerDir() string {
	if _, err := os.Stat(filepath.Join("examples", "logforward", "handler", "main.go")); err == nil {
		return filepath.Join("examples", "logforward", "handler")
	}
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "handler")
}

// ensureFunction creates or updates the function and returns its ARN once
// it can be invoked.
func ensureFunction(ctx context.Context, s settings, lc LambdaAPI, code []byte) (string, error) {
	env := &types.Environment{Variables: s.environment()}
	_, err := lc.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String(s.function)})
	switch {
	case awserr.Code(err) == "ResourceNotFoundException":
		_, err = lc.CreateFunction(ctx, &lambda.CreateFunctionInput{
			FunctionName:  aws.String(s.function),
			Runtime:       types.RuntimeProvidedal2023,
			Handler:       aws.String("bootstrap"),
			Architectures: []types.Architecture{types.ArchitectureArm64},
			Role:          aws.String(s.role),
			Code:          &types.FunctionCode{ZipFile: code},
			Environment:   env,
			MemorySize:    aws.Int32(256),
			Timeout:       aws.Int32(60),
			Description:   aws.String("convox log forwarder (package logforward)"),
		})
		if err != nil {
			return "", awserr.Wrap("create function "+s.function, err)
		}
	case err != nil:
		return "", awserr.Wrap("get function "+s.function, err)
	default:
		if _, err := lc.UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{FunctionName: aws.String(s.function), ZipFile: code, Architectures: []types.Architecture{types.ArchitectureArm64}}); err != nil {
			return "", awserr.Wrap("update the code of "+s.function, err)
		}
		if err := lambda.NewFunctionUpdatedV2Waiter(lc).Wait(ctx, &lambda.GetFunctionInput{FunctionName: aws.String(s.function)}, 5*time.Minute); err != nil {
			return "", fmt.Errorf("wait for the code of %s: %w", s.function, err)
		}
		if _, err := lc.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String(s.function), Environment: env, Role: aws.String(s.role)}); err != nil {
			return "", awserr.Wrap("update the configuration of "+s.function, err)
		}
	}
	if err := lambda.NewFunctionActiveV2Waiter(lc).Wait(ctx, &lambda.GetFunctionInput{FunctionName: aws.String(s.function)}, 5*time.Minute); err != nil {
		return "", fmt.Errorf("wait for %s to be active: %w", s.function, err)
	}
	got, err := lc.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String(s.function)})
	if err != nil {
		return "", awserr.Wrap("get function "+s.function, err)
	}
	return aws.ToString(got.Configuration.FunctionArn), nil
}
