package awserr_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/internal/awserr"
	"github.com/convox-go/convox/providers"
)

// sdkErr builds the error shape the SDK returns for an API error: an
// operation error around a response error around the API error.
func sdkErr(code string, status int) error {
	return &smithy.OperationError{
		ServiceID:     "ECS",
		OperationName: "DescribeServices",
		Err: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
			Err:      &smithy.GenericAPIError{Code: code, Message: "message from the service"},
		},
	}
}

func statusErr(status int) error {
	return &smithy.OperationError{
		ServiceID:     "ECR",
		OperationName: "BatchGetImage",
		Err: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
			Err:      errors.New("unexpected response"),
		},
	}
}

var sentinels = []error{
	providers.ErrNotFound, providers.ErrAlreadyExists, providers.ErrConflict, providers.ErrInvalid,
	providers.ErrPermission, providers.ErrThrottled, providers.ErrUnavailable, providers.ErrUnimplemented,
}

func TestWrapMapsErrorsToExactlyOneSentinel(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want error // nil: no sentinel
	}{
		{"throttling code is throttled", sdkErr("ThrottlingException", 400), providers.ErrThrottled},
		{"query throttling code is throttled", sdkErr("Throttling", 400), providers.ErrThrottled},
		{"too many requests is throttled", sdkErr("TooManyRequestsException", 429), providers.ErrThrottled},
		{"provisioned throughput is throttled", sdkErr("ProvisionedThroughputExceededException", 400), providers.ErrThrottled},
		{"limit exceeded is throttled", sdkErr("LimitExceededException", 400), providers.ErrThrottled},
		{"resource not found", sdkErr("ResourceNotFoundException", 400), providers.ErrNotFound},
		{"repository not found", sdkErr("RepositoryNotFoundException", 400), providers.ErrNotFound},
		{"image not found", sdkErr("ImageNotFoundException", 400), providers.ErrNotFound},
		{"service not found", sdkErr("ServiceNotFoundException", 400), providers.ErrNotFound},
		{"cluster not found", sdkErr("ClusterNotFoundException", 400), providers.ErrNotFound},
		{"load balancer not found", sdkErr("LoadBalancerNotFound", 400), providers.ErrNotFound},
		{"classic load balancer not found", sdkErr("AccessPointNotFound", 400), providers.ErrNotFound},
		{"target group not found", sdkErr("TargetGroupNotFound", 400), providers.ErrNotFound},
		{"unlisted not-found code matches by suffix", sdkErr("WidgetNotFoundException", 400), providers.ErrNotFound},
		{"repository already exists", sdkErr("RepositoryAlreadyExistsException", 400), providers.ErrAlreadyExists},
		{"duplicate target group name already exists", sdkErr("DuplicateTargetGroupName", 400), providers.ErrAlreadyExists},
		{"conditional check failed is a conflict", sdkErr("ConditionalCheckFailedException", 400), providers.ErrConflict},
		{"resource in use is a conflict", sdkErr("ResourceInUseException", 400), providers.ErrConflict},
		{"access denied exception is permission", sdkErr("AccessDeniedException", 400), providers.ErrPermission},
		{"access denied prefix is permission", sdkErr("AccessDenied.Custom", 403), providers.ErrPermission},
		{"unrecognized client is permission", sdkErr("UnrecognizedClientException", 400), providers.ErrPermission},
		{"expired token is permission", sdkErr("ExpiredTokenException", 400), providers.ErrPermission},
		{"validation is invalid", sdkErr("ValidationException", 400), providers.ErrInvalid},
		{"invalid parameter is invalid", sdkErr("InvalidParameterException", 400), providers.ErrInvalid},
		{"unlisted invalid code matches by prefix", sdkErr("InvalidWidgetValue", 400), providers.ErrInvalid},
		{"ECS client exception is invalid", sdkErr("ClientException", 400), providers.ErrInvalid},
		{"service unavailable", sdkErr("ServiceUnavailableException", 503), providers.ErrUnavailable},
		{"ECS server exception is unavailable", sdkErr("ServerException", 500), providers.ErrUnavailable},
		{"internal failure is unavailable", sdkErr("InternalFailure", 500), providers.ErrUnavailable},
		{"unknown code with 5xx is unavailable", sdkErr("SomethingOdd", 502), providers.ErrUnavailable},
		{"unknown code with 404 is not found", sdkErr("SomethingOdd", 404), providers.ErrNotFound},
		{"bare 429 is throttled", statusErr(429), providers.ErrThrottled},
		{"bare 409 is a conflict", statusErr(409), providers.ErrConflict},
		{"bare 403 is permission", statusErr(403), providers.ErrPermission},
		{"bare 400 is invalid", statusErr(400), providers.ErrInvalid},
		{"server fault without status is unavailable", &smithy.GenericAPIError{Code: "Odd", Fault: smithy.FaultServer}, providers.ErrUnavailable},
		{"refused connection is unavailable", &smithy.OperationError{Err: &smithyhttp.RequestSendError{Err: &net.OpError{Op: "dial", Err: errors.New("connection refused")}}}, providers.ErrUnavailable},
		{"unknown code with 200 has no sentinel", sdkErr("SomethingOdd", 200), nil},
		{"plain error has no sentinel", errors.New("boom"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := awserr.Wrap("describe services", tt.err)
			if !errors.Is(got, tt.err) {
				t.Errorf("Wrap(%v) = %v: does not unwrap to the cause", tt.err, got)
			}
			matched := []string{}
			for _, s := range sentinels {
				if errors.Is(got, s) {
					matched = append(matched, s.Error())
				}
			}
			want := []string{}
			if tt.want != nil {
				want = []string{tt.want.Error()}
			}
			if diff := cmp.Diff(want, matched); diff != "" {
				t.Errorf("sentinels matched by Wrap(%v) (-want +got):\n%s", tt.err, diff)
			}
			if s := awserr.Sentinel(tt.err); s != tt.want {
				t.Errorf("Sentinel(%v) = %v, want %v", tt.err, s, tt.want)
			}
		})
	}
}

func TestWrapKeepsTheAPIErrorReachable(t *testing.T) {
	got := awserr.Wrap("describe services", sdkErr("ServiceNotFoundException", 400))
	var api smithy.APIError
	if !errors.As(got, &api) {
		t.Fatalf("errors.As(%v, smithy.APIError) = false", got)
	}
	if api.ErrorCode() != "ServiceNotFoundException" {
		t.Errorf("code = %q, want ServiceNotFoundException", api.ErrorCode())
	}
	if awserr.Code(got) != "ServiceNotFoundException" {
		t.Errorf("Code = %q, want ServiceNotFoundException", awserr.Code(got))
	}
	if want := "describe services: not found: "; len(got.Error()) < len(want) || got.Error()[:len(want)] != want {
		t.Errorf("message %q does not start with %q", got.Error(), want)
	}
}

func TestWrapPassesContextErrorsThrough(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"canceled context", context.Canceled, context.Canceled},
		{"expired context", context.DeadlineExceeded, context.DeadlineExceeded},
		{"SDK canceled error", &smithy.OperationError{Err: &smithy.CanceledError{Err: context.Canceled}}, context.Canceled},
		{"deadline inside a send error", &smithy.OperationError{Err: &smithyhttp.RequestSendError{Err: context.DeadlineExceeded}}, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := awserr.Wrap("op", tt.err)
			if !errors.Is(got, tt.want) {
				t.Errorf("Wrap(%v) = %v, want it to match %v", tt.err, got, tt.want)
			}
			for _, s := range sentinels {
				if errors.Is(got, s) {
					t.Errorf("Wrap(%v) = %v matches sentinel %v", tt.err, got, s)
				}
			}
		})
	}
}

func TestWrapNilIsNil(t *testing.T) {
	if err := awserr.Wrap("op", nil); err != nil {
		t.Errorf("Wrap(nil) = %v, want nil", err)
	}
}

func TestAsWrapsTheGivenSentinelAndCause(t *testing.T) {
	cause := errors.New("ImageNotFound: image not found")
	got := awserr.As("batch get image", providers.ErrNotFound, cause)
	if !errors.Is(got, providers.ErrNotFound) || !errors.Is(got, cause) {
		t.Errorf("As = %v: want both ErrNotFound and the cause", got)
	}
}
