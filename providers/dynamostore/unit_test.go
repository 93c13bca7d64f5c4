package dynamostore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/dynamostore"
)

// stub is an API whose operations are functions; a nil one fails the test.
type stub struct {
	t      *testing.T
	get    func(*dynamodb.GetItemInput) (*dynamodb.GetItemOutput, error)
	update func(*dynamodb.UpdateItemInput) (*dynamodb.UpdateItemOutput, error)
	del    func(*dynamodb.DeleteItemInput) (*dynamodb.DeleteItemOutput, error)
	query  func(*dynamodb.QueryInput) (*dynamodb.QueryOutput, error)
}

func (s *stub) GetItem(_ context.Context, in *dynamodb.GetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	if s.get == nil {
		s.t.Fatalf("unexpected GetItem")
	}
	return s.get(in)
}

func (s *stub) UpdateItem(_ context.Context, in *dynamodb.UpdateItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	if s.update == nil {
		s.t.Fatalf("unexpected UpdateItem")
	}
	return s.update(in)
}

func (s *stub) DeleteItem(_ context.Context, in *dynamodb.DeleteItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	if s.del == nil {
		s.t.Fatalf("unexpected DeleteItem")
	}
	return s.del(in)
}

func (s *stub) Query(_ context.Context, in *dynamodb.QueryInput, _ ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	if s.query == nil {
		s.t.Fatalf("unexpected Query")
	}
	return s.query(in)
}

var clock = func() time.Time { return time.UnixMicro(1_700_000_000_000_000) }

func item(key string, version string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		dynamostore.AttrNamespace: &types.AttributeValueMemberS{Value: "ns"},
		dynamostore.AttrKey:       &types.AttributeValueMemberS{Value: key},
		dynamostore.AttrValue:     &types.AttributeValueMemberB{Value: []byte("v")},
		dynamostore.AttrVersion:   &types.AttributeValueMemberN{Value: version},
	}
}

func TestPutRequests(t *testing.T) {
	type request struct {
		Update, Condition string
		Values            map[string]string // numbers only
	}
	numbers := func(in map[string]types.AttributeValue) map[string]string {
		out := map[string]string{}
		for k, v := range in {
			if n, ok := v.(*types.AttributeValueMemberN); ok {
				out[k] = n.Value
			}
		}
		return out
	}
	for _, tc := range []struct {
		name      string
		ifVersion int64
		want      request
	}{
		{"create-only requires a missing version and seeds it with the clock in microseconds", 0, request{
			Update: "SET #val = :val, #ver = :init, #wid = :wid", Condition: "attribute_not_exists(#ver)",
			Values: map[string]string{":init": "1700000000000000"},
		}},
		{"a positive version requires that version and increments it", 42, request{
			Update: "SET #val = :val, #ver = #ver + :one, #wid = :wid", Condition: "#ver = :expected",
			Values: map[string]string{":expected": "42", ":one": "1"},
		}},
		{"AnyVersion has no condition and increments, seeding a new document with the clock", providers.AnyVersion, request{
			Update: "SET #val = :val, #ver = if_not_exists(#ver, :init) + :one, #wid = :wid",
			Values: map[string]string{":init": "1699999999999999", ":one": "1"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got request
			api := &stub{t: t, update: func(in *dynamodb.UpdateItemInput) (*dynamodb.UpdateItemOutput, error) {
				got = request{Update: aws.ToString(in.UpdateExpression), Condition: aws.ToString(in.ConditionExpression), Values: numbers(in.ExpressionAttributeValues)}
				return &dynamodb.UpdateItemOutput{Attributes: map[string]types.AttributeValue{dynamostore.AttrVersion: &types.AttributeValueMemberN{Value: "7"}}}, nil
			}}
			s := dynamostore.New(api, "t", &dynamostore.Options{Namespace: "ns", Now: clock})
			v, err := s.Put(t.Context(), "k", []byte("v"), tc.ifVersion)
			if err != nil {
				t.Fatal(err)
			}
			if v != 7 {
				t.Errorf("Put returned version %d, want the 7 of the response", v)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("UpdateItem request (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPutRecognizesItsOwnRetriedWrite: when the SDK retries a Put whose
// first attempt was applied but whose answer was lost, the retry's
// condition fails on the version the first attempt wrote; the Put then
// finds its own write ID on the item and succeeds with that version,
// while an item another Put wrote is still a conflict.
func TestPutRecognizesItsOwnRetriedWrite(t *testing.T) {
	for _, tc := range []struct {
		name      string
		ifVersion int64
		ours      bool
		want      error
	}{
		{"a create-only Put whose first attempt was applied succeeds", 0, true, nil},
		{"a versioned Put whose first attempt was applied succeeds", 3, true, nil},
		{"a create-only Put of a key another Put wrote is ErrConflict", 0, false, providers.ErrConflict},
		{"a versioned Put after another Put is ErrConflict", 3, false, providers.ErrConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stored map[string]types.AttributeValue
			api := &stub{t: t,
				update: func(in *dynamodb.UpdateItemInput) (*dynamodb.UpdateItemOutput, error) {
					// The first attempt is applied, then its answer lost and
					// the retry's condition fails on what it wrote.
					stored = item("k", "9")
					wid := in.ExpressionAttributeValues[":wid"]
					if !tc.ours {
						wid = &types.AttributeValueMemberB{Value: []byte("another put's write id")}
					}
					stored[dynamostore.AttrWrite] = wid
					return nil, &types.ConditionalCheckFailedException{Message: aws.String("The conditional request failed")}
				},
				get: func(*dynamodb.GetItemInput) (*dynamodb.GetItemOutput, error) {
					return &dynamodb.GetItemOutput{Item: stored}, nil
				},
			}
			s := dynamostore.New(api, "t", &dynamostore.Options{Namespace: "ns"})
			v, err := s.Put(t.Context(), "k", []byte("v"), tc.ifVersion)
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("Put = %d, %v; want error %v", v, err, tc.want)
			}
			if tc.want == nil && v != 9 {
				t.Errorf("Put returned version %d, want the 9 its first attempt wrote", v)
			}
		})
	}
}

func TestErrorMapping(t *testing.T) {
	conditionFailed := &types.ConditionalCheckFailedException{Message: aws.String("The conditional request failed")}
	throttled := &smithy.GenericAPIError{Code: "ThrottlingException", Message: "Rate exceeded"}
	missingTable := &types.ResourceNotFoundException{Message: aws.String("Requested resource not found")}
	for _, tc := range []struct {
		name string
		api  func(t *testing.T) *stub
		call func(ctx context.Context, s *dynamostore.Store) error
		want error
	}{
		{
			name: "a failed Put condition is ErrConflict and still unwraps to the SDK error",
			api: func(t *testing.T) *stub {
				return &stub{t: t,
					update: func(*dynamodb.UpdateItemInput) (*dynamodb.UpdateItemOutput, error) { return nil, conditionFailed },
					get: func(*dynamodb.GetItemInput) (*dynamodb.GetItemOutput, error) {
						return &dynamodb.GetItemOutput{Item: item("k", "4")}, nil
					},
				}
			},
			call: func(ctx context.Context, s *dynamostore.Store) error { _, err := s.Put(ctx, "k", nil, 3); return err },
			want: providers.ErrConflict,
		},
		{
			name: "a failed Delete condition on a missing document is ErrNotFound",
			api: func(t *testing.T) *stub {
				return &stub{t: t,
					del: func(*dynamodb.DeleteItemInput) (*dynamodb.DeleteItemOutput, error) { return nil, conditionFailed },
					get: func(*dynamodb.GetItemInput) (*dynamodb.GetItemOutput, error) { return &dynamodb.GetItemOutput{}, nil },
				}
			},
			call: func(ctx context.Context, s *dynamostore.Store) error { return s.Delete(ctx, "k", 3) },
			want: providers.ErrNotFound,
		},
		{
			name: "a failed Delete condition on a document of another version is ErrConflict",
			api: func(t *testing.T) *stub {
				return &stub{t: t,
					del: func(*dynamodb.DeleteItemInput) (*dynamodb.DeleteItemOutput, error) { return nil, conditionFailed },
					get: func(*dynamodb.GetItemInput) (*dynamodb.GetItemOutput, error) {
						return &dynamodb.GetItemOutput{Item: item("k", "4")}, nil
					},
				}
			},
			call: func(ctx context.Context, s *dynamostore.Store) error { return s.Delete(ctx, "k", 3) },
			want: providers.ErrConflict,
		},
		{
			name: "throttling is ErrThrottled",
			api: func(t *testing.T) *stub {
				return &stub{t: t, get: func(*dynamodb.GetItemInput) (*dynamodb.GetItemOutput, error) { return nil, throttled }}
			},
			call: func(ctx context.Context, s *dynamostore.Store) error { _, err := s.Get(ctx, "k"); return err },
			want: providers.ErrThrottled,
		},
		{
			name: "a missing table is ErrNotFound",
			api: func(t *testing.T) *stub {
				return &stub{t: t, query: func(*dynamodb.QueryInput) (*dynamodb.QueryOutput, error) { return nil, missingTable }}
			},
			call: func(ctx context.Context, s *dynamostore.Store) error {
				_, err := s.List(ctx, "apps/", providers.ListOptions{})
				return err
			},
			want: providers.ErrNotFound,
		},
		{
			name: "a version below AnyVersion is ErrInvalid before any call",
			api:  func(t *testing.T) *stub { return &stub{t: t} },
			call: func(ctx context.Context, s *dynamostore.Store) error { _, err := s.Put(ctx, "k", nil, -2); return err },
			want: providers.ErrInvalid,
		},
		{
			name: "a malformed token is ErrInvalid before any call",
			api:  func(t *testing.T) *stub { return &stub{t: t} },
			call: func(ctx context.Context, s *dynamostore.Store) error {
				_, err := s.List(ctx, "apps/", providers.ListOptions{Token: "!"})
				return err
			},
			want: providers.ErrInvalid,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := dynamostore.New(tc.api(t), "t", &dynamostore.Options{Namespace: "ns"})
			err := tc.call(t.Context(), s)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got error %v, want one matching %v", err, tc.want)
			}
			var api smithy.APIError
			if tc.want != providers.ErrInvalid && tc.want != providers.ErrNotFound && !errors.As(err, &api) {
				t.Errorf("error %v does not unwrap to a smithy.APIError", err)
			}
		})
	}
}

func TestListQueries(t *testing.T) {
	type query struct {
		Condition string
		Forward   bool
		Limit     int32
		Bound     string
	}
	// The first page of "a/" has a next page; the continuation reads past
	// the prefix, which ends the listing.
	var got []query
	api := &stub{t: t, query: func(in *dynamodb.QueryInput) (*dynamodb.QueryOutput, error) {
		q := query{Condition: aws.ToString(in.KeyConditionExpression), Forward: aws.ToBool(in.ScanIndexForward), Limit: aws.ToInt32(in.Limit)}
		for _, name := range []string{":prefix", ":after"} {
			if v, ok := in.ExpressionAttributeValues[name].(*types.AttributeValueMemberS); ok {
				q.Bound = v.Value
			}
		}
		got = append(got, q)
		if len(got) == 1 {
			return &dynamodb.QueryOutput{Items: []map[string]types.AttributeValue{item("a/1", "1"), item("a/2", "1")}, LastEvaluatedKey: item("a/2", "1")}, nil
		}
		return &dynamodb.QueryOutput{Items: []map[string]types.AttributeValue{item("a/3", "1"), item("b/1", "1")}, LastEvaluatedKey: item("b/1", "1")}, nil
	}}
	s := dynamostore.New(api, "t", &dynamostore.Options{Namespace: "ns"})
	var keys []string
	opts := providers.ListOptions{Limit: 2}
	for range 3 {
		page, err := s.List(t.Context(), "a/", opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range page.Docs {
			keys = append(keys, d.Key)
		}
		if page.Next == "" {
			break
		}
		opts.Token = page.Next
	}
	want := []query{
		{Condition: "#pk = :ns AND begins_with(#sk, :prefix)", Forward: true, Limit: 2, Bound: "a/"},
		{Condition: "#pk = :ns AND #sk > :after", Forward: true, Limit: 2, Bound: "a/2"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("queries (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"a/1", "a/2", "a/3"}, keys); diff != "" {
		t.Errorf("keys (-want +got):\n%s", diff)
	}
}

// TestPutRefusesAnOversizedValueBeforeAnyCall: a value larger than an item
// holds under its key is ErrInvalid without a request (the stub fails the
// test on any call); the largest one is sent.
func TestPutRefusesAnOversizedValueBeforeAnyCall(t *testing.T) {
	sent := 0
	api := &stub{t: t, update: func(*dynamodb.UpdateItemInput) (*dynamodb.UpdateItemOutput, error) {
		sent++
		return &dynamodb.UpdateItemOutput{Attributes: map[string]types.AttributeValue{dynamostore.AttrVersion: &types.AttributeValueMemberN{Value: "1"}}}, nil
	}}
	s := dynamostore.New(api, "t", &dynamostore.Options{Namespace: "ns", Now: clock})
	key := "apps/shop/releases/R1"
	if got, want := s.MaxValueSize(key), dynamostore.MaxItemSize-len("ns")-len(key)-len("pkskvalverwid")-21-16; got != want {
		t.Errorf("MaxValueSize = %d, want %d", got, want)
	}
	if _, err := s.Put(t.Context(), key, make([]byte, s.MaxValueSize(key)+1), 0); !errors.Is(err, providers.ErrInvalid) {
		t.Errorf("put a byte too many: %v, want an error matching ErrInvalid", err)
	}
	if sent != 0 {
		t.Errorf("%d requests sent for the oversized value, want none", sent)
	}
	if _, err := s.Put(t.Context(), key, make([]byte, s.MaxValueSize(key)), 0); err != nil {
		t.Errorf("put the largest value: %v", err)
	}
	if sent != 1 {
		t.Errorf("%d requests sent for the largest value, want 1", sent)
	}
}
