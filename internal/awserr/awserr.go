// Package awserr maps errors of the AWS SDK for Go v2 to the sentinel errors
// of package providers.
//
// Every AWS provider passes the error of each SDK call through Wrap. The
// result matches exactly one sentinel with errors.Is when the failure falls
// into a category, and still unwraps to the SDK's own error, so errors.As
// reaches the smithy.APIError, its code and its message:
//
//	out, err := client.DescribeServices(ctx, in)
//	if err != nil {
//		return awserr.Wrap("describe services", err)
//	}
//
// A canceled or expired context is never turned into a sentinel: Wrap keeps
// it matching context.Canceled or context.DeadlineExceeded. Wrap does not
// retry; per-call retries belong to the SDK's retryer (aws/retry), which has
// already given up when Wrap sees the error.
//
// # Mapping
//
// The API error code decides first (see Sentinel for the tables); an
// unknown code falls back on the HTTP status of the response (404 not
// found, 409 conflict, 429 throttled, 401 and 403 permission, other 4xx
// invalid, 5xx unavailable); a request that never got a response (refused
// connection, reset, DNS failure, timeout of the transport) is unavailable.
// Anything else is returned wrapped with the operation name only.
package awserr

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/convox-go/convox/providers"
)

// codes maps AWS API error codes to sentinels. It covers the services the
// AWS providers use (ECS, ECR, ELB, ELBv2, CloudWatch Logs, Kinesis,
// DynamoDB, STS); codes that start with "AccessDenied" or "Invalid" or end
// in "NotFound"/"NotFoundException" are matched by rule in Sentinel.
var codes = map[string]error{
	// Throttling: the SDK's throttle codes and the services' own names.
	"Throttling":                             providers.ErrThrottled,
	"ThrottlingException":                    providers.ErrThrottled,
	"ThrottledException":                     providers.ErrThrottled,
	"RequestThrottled":                       providers.ErrThrottled,
	"RequestThrottledException":              providers.ErrThrottled,
	"TooManyRequestsException":               providers.ErrThrottled,
	"ProvisionedThroughputExceededException": providers.ErrThrottled,
	"RequestLimitExceeded":                   providers.ErrThrottled,
	"BandwidthLimitExceeded":                 providers.ErrThrottled,
	"LimitExceededException":                 providers.ErrThrottled,
	"SlowDown":                               providers.ErrThrottled,
	"PriorRequestNotComplete":                providers.ErrThrottled,
	"TransactionInProgressException":         providers.ErrThrottled,
	"EC2ThrottledException":                  providers.ErrThrottled,
	"RequestLimitExceededException":          providers.ErrThrottled,

	// Not found.
	"ResourceNotFoundException":        providers.ErrNotFound,
	"RepositoryNotFoundException":      providers.ErrNotFound,
	"ImageNotFoundException":           providers.ErrNotFound,
	"LayersNotFoundException":          providers.ErrNotFound,
	"ServiceNotFoundException":         providers.ErrNotFound,
	"ServiceNotActiveException":        providers.ErrNotFound,
	"ClusterNotFoundException":         providers.ErrNotFound,
	"TaskSetNotFoundException":         providers.ErrNotFound,
	"TargetNotConnectedException":      providers.ErrNotFound,
	"LoadBalancerNotFound":             providers.ErrNotFound,
	"AccessPointNotFound":              providers.ErrNotFound,
	"TargetGroupNotFound":              providers.ErrNotFound,
	"ListenerNotFound":                 providers.ErrNotFound,
	"RuleNotFound":                     providers.ErrNotFound,
	"CertificateNotFound":              providers.ErrNotFound,
	"LoadBalancerAttributeNotFound":    providers.ErrNotFound,
	"PolicyNotFound":                   providers.ErrNotFound,
	"ParameterNotFound":                providers.ErrNotFound,
	"NoSuchKey":                        providers.ErrNotFound,
	"NoSuchBucket":                     providers.ErrNotFound,
	"NotFound":                         providers.ErrNotFound,
	"NotFoundException":                providers.ErrNotFound,
	"TableNotFoundException":           providers.ErrNotFound,
	"LogGroupNotFoundException":        providers.ErrNotFound,
	"LifecyclePolicyNotFoundException": providers.ErrNotFound,

	// Already exists.
	"ResourceAlreadyExistsException":   providers.ErrAlreadyExists,
	"RepositoryAlreadyExistsException": providers.ErrAlreadyExists,
	"ImageAlreadyExistsException":      providers.ErrAlreadyExists,
	"TableAlreadyExistsException":      providers.ErrAlreadyExists,
	"DuplicateLoadBalancerName":        providers.ErrAlreadyExists,
	"DuplicateAccessPointName":         providers.ErrAlreadyExists,
	"DuplicateTargetGroupName":         providers.ErrAlreadyExists,
	"DuplicateListener":                providers.ErrAlreadyExists,
	"DuplicateTagKeys":                 providers.ErrInvalid,
	"BucketAlreadyOwnedByYou":          providers.ErrAlreadyExists,

	// Conflict: a condition or a concurrent writer won.
	"ConditionalCheckFailedException":      providers.ErrConflict,
	"TransactionConflictException":         providers.ErrConflict,
	"TransactionCanceledException":         providers.ErrConflict,
	"ConcurrentModificationException":      providers.ErrConflict,
	"ConflictException":                    providers.ErrConflict,
	"ResourceInUseException":               providers.ErrConflict,
	"ResourceInUse":                        providers.ErrConflict,
	"UpdateInProgressException":            providers.ErrConflict,
	"OperationAbortedException":            providers.ErrConflict,
	"InvalidSequenceTokenException":        providers.ErrConflict,
	"DataAlreadyAcceptedException":         providers.ErrConflict,
	"ImageTagAlreadyExistsException":       providers.ErrConflict,
	"PriorityInUse":                        providers.ErrConflict,
	"OperationNotPermitted":                providers.ErrConflict,
	"IdempotentParameterMismatch":          providers.ErrConflict,
	"IdempotentParameterMismatchException": providers.ErrConflict,

	// Permission and authentication.
	"AccessDenied":                providers.ErrPermission,
	"AccessDeniedException":       providers.ErrPermission,
	"UnauthorizedOperation":       providers.ErrPermission,
	"UnrecognizedClientException": providers.ErrPermission,
	"InvalidClientTokenId":        providers.ErrPermission,
	"InvalidAccessKeyId":          providers.ErrPermission,
	"ExpiredToken":                providers.ErrPermission,
	"ExpiredTokenException":       providers.ErrPermission,
	"SignatureDoesNotMatch":       providers.ErrPermission,
	"IncompleteSignature":         providers.ErrPermission,
	"MissingAuthenticationToken":  providers.ErrPermission,
	"AuthFailure":                 providers.ErrPermission,
	"NotAuthorized":               providers.ErrPermission,
	"UnauthorizedException":       providers.ErrPermission,
	"KMSAccessDeniedException":    providers.ErrPermission,
	"OptInRequired":               providers.ErrPermission,

	// Invalid requests: retrying cannot succeed.
	"ValidationException":                            providers.ErrInvalid,
	"ValidationError":                                providers.ErrInvalid,
	"InvalidParameterException":                      providers.ErrInvalid,
	"InvalidParameterValue":                          providers.ErrInvalid,
	"InvalidParameterValueException":                 providers.ErrInvalid,
	"InvalidParameterCombination":                    providers.ErrInvalid,
	"InvalidRequestException":                        providers.ErrInvalid,
	"MissingParameter":                               providers.ErrInvalid,
	"MissingRequiredParameter":                       providers.ErrInvalid,
	"SerializationException":                         providers.ErrInvalid,
	"ClientException":                                providers.ErrInvalid,
	"PlatformUnknownException":                       providers.ErrInvalid,
	"PlatformTaskDefinitionIncompatibilityException": providers.ErrInvalid,
	"UnsupportedFeatureException":                    providers.ErrInvalid,
	"UnsupportedProtocol":                            providers.ErrInvalid,
	"UnsupportedCertificate":                         providers.ErrInvalid,
	"TooManyTargetGroups":                            providers.ErrInvalid,
	"TooManyTargets":                                 providers.ErrInvalid,
	"TooManyLoadBalancers":                           providers.ErrInvalid,
	"TooManyRules":                                   providers.ErrInvalid,
	"TooManyTagsException":                           providers.ErrInvalid,
	"ItemCollectionSizeLimitExceededException":       providers.ErrInvalid,
	"MalformedPolicyDocument":                        providers.ErrInvalid,

	// The service failed or is unavailable: retry later.
	"ServiceUnavailable":            providers.ErrUnavailable,
	"ServiceUnavailableException":   providers.ErrUnavailable,
	"InternalError":                 providers.ErrUnavailable,
	"InternalFailure":               providers.ErrUnavailable,
	"InternalServerError":           providers.ErrUnavailable,
	"InternalServerException":       providers.ErrUnavailable,
	"InternalServiceError":          providers.ErrUnavailable,
	"InternalServiceException":      providers.ErrUnavailable,
	"ServerException":               providers.ErrUnavailable,
	"ServiceException":              providers.ErrUnavailable,
	"ServiceFailure":                providers.ErrUnavailable,
	"RequestTimeout":                providers.ErrUnavailable,
	"RequestTimeoutException":       providers.ErrUnavailable,
	"KMSThrottlingException":        providers.ErrThrottled,
	"KMSInternalException":          providers.ErrUnavailable,
	"ServiceQuotaExceededException": providers.ErrThrottled,
}

// Sentinel returns the sentinel of package providers that err falls into,
// or nil when it falls into none or is a context error.
//
// The API error code is looked up in a table first: throttling codes
// (Throttling, ThrottlingException, TooManyRequestsException,
// ProvisionedThroughputExceededException, LimitExceededException, ...) give
// ErrThrottled; not-found codes (ResourceNotFoundException,
// RepositoryNotFoundException, ImageNotFoundException,
// ServiceNotFoundException, ClusterNotFoundException, LoadBalancerNotFound,
// TargetGroupNotFound, ...) give ErrNotFound; ...AlreadyExists and
// Duplicate... codes give ErrAlreadyExists; ConditionalCheckFailedException,
// ConflictException, ResourceInUseException and similar give ErrConflict;
// AccessDenied..., UnrecognizedClientException, ExpiredToken... give
// ErrPermission; ValidationException, InvalidParameter..., ClientException
// give ErrInvalid; InternalError, ServiceUnavailable, ServerException and
// RequestTimeout give ErrUnavailable. Codes outside the table match by
// rule: "AccessDenied..." is ErrPermission, "...NotFound" and
// "...NotFoundException" are ErrNotFound, "...AlreadyExists..." is
// ErrAlreadyExists, "Invalid..." is ErrInvalid. Then the HTTP status
// decides, then transport failures (ErrUnavailable).
func Sentinel(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		if s := byCode(api.ErrorCode()); s != nil {
			return s
		}
	}
	var resp *smithyhttp.ResponseError
	if errors.As(err, &resp) && resp.HTTPStatusCode() != 0 {
		if s := byStatus(resp.HTTPStatusCode()); s != nil {
			return s
		}
	}
	if api != nil && api.ErrorFault() == smithy.FaultServer {
		return providers.ErrUnavailable
	}
	var send *smithyhttp.RequestSendError
	var nerr net.Error
	if errors.As(err, &send) || errors.As(err, &nerr) {
		return providers.ErrUnavailable
	}
	return nil
}

func byCode(code string) error {
	if code == "" {
		return nil
	}
	if s, ok := codes[code]; ok {
		return s
	}
	switch {
	case strings.HasPrefix(code, "AccessDenied"):
		return providers.ErrPermission
	case strings.HasSuffix(code, "NotFound"), strings.HasSuffix(code, "NotFoundException"):
		return providers.ErrNotFound
	case strings.Contains(code, "AlreadyExists"):
		return providers.ErrAlreadyExists
	case strings.HasPrefix(code, "Invalid"):
		return providers.ErrInvalid
	}
	return nil
}

func byStatus(status int) error {
	switch {
	case status == 404:
		return providers.ErrNotFound
	case status == 409:
		return providers.ErrConflict
	case status == 429:
		return providers.ErrThrottled
	case status == 401, status == 403:
		return providers.ErrPermission
	case status >= 500:
		return providers.ErrUnavailable
	case status >= 400:
		return providers.ErrInvalid
	}
	return nil
}

// Wrap returns nil for nil, and otherwise err prefixed with op and, when it
// falls into a category, wrapping both the sentinel and err:
//
//	fmt.Errorf("%s: %w: %w", op, sentinel, err)
//
// A context error (context.Canceled, context.DeadlineExceeded, including
// the SDK's wrapping of them) keeps matching the context error and no
// sentinel.
func Wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if s := Sentinel(err); s != nil {
		return fmt.Errorf("%s: %w: %w", op, s, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// As wraps err with an explicit sentinel, for failures the SDK reports
// outside an API error (a per-item failure of a batch call, a missing
// resource reported as an empty list): fmt.Errorf("%s: %w: %w", op,
// sentinel, err).
func As(op string, sentinel, err error) error {
	return fmt.Errorf("%s: %w: %w", op, sentinel, err)
}

// Code returns the API error code of err, or "" when err carries none.
func Code(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return ""
}
