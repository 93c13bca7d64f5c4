package dynamostore_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/internal/awstest"
	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/dynamostore"
	"github.com/convox-go/convox/providers/providertest"
)

// testTable is the emulator table every test shares; each test works in a
// namespace of its own.
const testTable = "convox-dynamostore-test"

// emulator returns a client of the emulator's DynamoDB with the shared
// test table ensured.
func emulator(t *testing.T, e awstest.Emulator) *dynamodb.Client {
	t.Helper()
	db := dynamodb.NewFromConfig(e.Config())
	if err := dynamostore.EnsureTable(t.Context(), db, testTable); err != nil {
		t.Fatalf("EnsureTable: %v", err)
	}
	return db
}

// newStore returns a store of the shared table in a fresh namespace; on
// moto, its writes are made atomic (see awstest.AtomicWrites).
func newStore(t *testing.T, e awstest.Emulator) providers.Store {
	t.Helper()
	s := dynamostore.New(emulator(t, e), testTable, &dynamostore.Options{Namespace: awstest.Name(t, "ns")})
	if e.Backend == awstest.Moto {
		return awstest.AtomicWrites(s)
	}
	return s
}

func TestConformance(t *testing.T) {
	awstest.Emulators(t, func(t *testing.T, e awstest.Emulator) {
		s := newStore(t, e)
		providertest.TestStore(t, func(t *testing.T) providers.Store { return s })
	})
}

func TestEnsureTable(t *testing.T) {
	awstest.Emulators(t, func(t *testing.T, e awstest.Emulator) {
		db := emulator(t, e)
		describe := func(t *testing.T, table string) *types.TableDescription {
			t.Helper()
			out, err := db.DescribeTable(t.Context(), &dynamodb.DescribeTableInput{TableName: aws.String(table)})
			if err != nil {
				t.Fatalf("DescribeTable: %v", err)
			}
			return out.Table
		}
		type schema struct {
			Keys    map[string]types.KeyType
			Billing types.BillingMode
			Status  types.TableStatus
		}
		schemaOf := func(d *types.TableDescription) schema {
			s := schema{Keys: map[string]types.KeyType{}, Status: d.TableStatus}
			for _, k := range d.KeySchema {
				s.Keys[aws.ToString(k.AttributeName)] = k.KeyType
			}
			if d.BillingModeSummary != nil {
				s.Billing = d.BillingModeSummary.BillingMode
			}
			return s
		}
		want := schema{
			Keys:    map[string]types.KeyType{dynamostore.AttrNamespace: types.KeyTypeHash, dynamostore.AttrKey: types.KeyTypeRange},
			Billing: types.BillingModePayPerRequest,
			Status:  types.TableStatusActive,
		}

		t.Run("creates a missing table, active, on demand, with the store's key schema", func(t *testing.T) {
			table := awstest.Name(t, "table")
			t.Cleanup(func() { db.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(table)}) })
			if err := dynamostore.EnsureTable(t.Context(), db, table); err != nil {
				t.Fatalf("EnsureTable: %v", err)
			}
			if diff := cmp.Diff(want, schemaOf(describe(t, table))); diff != "" {
				t.Errorf("table (-want +got):\n%s", diff)
			}
		})

		t.Run("is idempotent, also when called concurrently", func(t *testing.T) {
			table := awstest.Name(t, "table")
			t.Cleanup(func() { db.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(table)}) })
			var wg sync.WaitGroup
			errs := make([]error, 4)
			for i := range errs {
				wg.Go(func() { errs[i] = dynamostore.EnsureTable(t.Context(), db, table) })
			}
			wg.Wait()
			errs = append(errs, dynamostore.EnsureTable(t.Context(), db, table))
			if err := errors.Join(errs...); err != nil {
				t.Fatalf("EnsureTable: %v", err)
			}
			if diff := cmp.Diff(want, schemaOf(describe(t, table))); diff != "" {
				t.Errorf("table (-want +got):\n%s", diff)
			}
		})

		t.Run("refuses an existing table with another key schema", func(t *testing.T) {
			table := awstest.Name(t, "table")
			t.Cleanup(func() { db.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(table)}) })
			_, err := db.CreateTable(t.Context(), &dynamodb.CreateTableInput{
				TableName:            aws.String(table),
				BillingMode:          types.BillingModePayPerRequest,
				AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("id"), AttributeType: types.ScalarAttributeTypeS}},
				KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("id"), KeyType: types.KeyTypeHash}},
			})
			if err != nil {
				t.Fatalf("CreateTable: %v", err)
			}
			if err := dynamostore.EnsureTable(t.Context(), db, table); !errors.Is(err, providers.ErrInvalid) {
				t.Errorf("EnsureTable of a table keyed by id: %v, want an error matching ErrInvalid", err)
			}
		})
	})
}

func TestNamespacesAreIsolated(t *testing.T) {
	awstest.Emulators(t, func(t *testing.T, e awstest.Emulator) {
		db := emulator(t, e)
		a := dynamostore.New(db, testTable, &dynamostore.Options{Namespace: awstest.Name(t, "a")})
		b := dynamostore.New(db, testTable, &dynamostore.Options{Namespace: awstest.Name(t, "b")})
		ctx := t.Context()
		if _, err := a.Put(ctx, "apps/web", []byte("a"), 0); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Put(ctx, "apps/web", []byte("b"), 0); err != nil {
			t.Fatalf("create-only Put of the same key in another namespace: %v", err)
		}
		for _, tc := range []struct {
			name  string
			store *dynamostore.Store
			want  string
		}{{"first namespace keeps its value", a, "a"}, {"second namespace keeps its value", b, "b"}} {
			t.Run(tc.name, func(t *testing.T) {
				page, err := tc.store.List(ctx, "apps/", providers.ListOptions{})
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, d := range page.Docs {
					got = append(got, d.Key+"="+string(d.Value))
				}
				if diff := cmp.Diff([]string{"apps/web=" + tc.want}, got); diff != "" {
					t.Errorf("List (-want +got):\n%s", diff)
				}
			})
		}
	})
}

func TestListContinuesAfterTheLastKeyWasDeleted(t *testing.T) {
	awstest.Emulators(t, func(t *testing.T, e awstest.Emulator) {
		s := newStore(t, e)
		ctx := t.Context()
		for _, k := range []string{"r/1", "r/2", "r/3", "r/4", "r/5", "s/1"} {
			if _, err := s.Put(ctx, k, []byte("v"), 0); err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range []struct {
			name    string
			reverse bool
			want    []string
		}{
			{"ascending", false, []string{"r/1", "r/2", "r/3", "r/4", "r/5"}},
			{"descending", true, []string{"r/5", "r/4", "r/3", "r/2", "r/1"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				opts := providers.ListOptions{Limit: 2, Reverse: tc.reverse}
				page, err := s.List(ctx, "r/", opts)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, d := range page.Docs {
					got = append(got, d.Key)
				}
				// The last key of the page disappears before the next page is read.
				last := page.Docs[len(page.Docs)-1]
				if err := s.Delete(ctx, last.Key, last.Version); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Put(context.Background(), last.Key, []byte("v"), 0) })
				for page.Next != "" {
					opts.Token = page.Next
					if page, err = s.List(ctx, "r/", opts); err != nil {
						t.Fatal(err)
					}
					for _, d := range page.Docs {
						got = append(got, d.Key)
					}
				}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("keys over the pages (-want +got):\n%s", diff)
				}
			})
		}
	})
}

// TestLargestValue stores the largest value a key holds on each emulator
// (the item is then as large as DynamoDB allows, but for the digits its
// version number could still grow by) and refuses a byte more with
// ErrInvalid, leaving the document as it was.
func TestLargestValue(t *testing.T) {
	awstest.Emulators(t, func(t *testing.T, e awstest.Emulator) {
		ctx := t.Context()
		s := dynamostore.New(emulator(t, e), testTable, &dynamostore.Options{Namespace: awstest.Name(t, "ns")})
		key := "apps/shop/releases/R1"
		n := s.MaxValueSize(key)
		if e.Backend == awstest.Moto {
			// AWS: "The maximum item size in DynamoDB is 400 KB, which
			// includes both attribute name binary length (UTF-8 length)
			// and attribute value lengths (again binary length)" (Service,
			// account, and table quotas in Amazon DynamoDB), 409,600
			// bytes; moto caps items at 405,000 bytes instead
			// (moto/dynamodb/models/dynamo_type.py, LimitedSizeDict).
			n -= dynamostore.MaxItemSize - 405000
		}
		largest := bytes.Repeat([]byte{'x'}, n)
		if _, err := s.Put(ctx, key, largest, 0); err != nil {
			t.Fatalf("put the largest value (%d bytes): %v", len(largest), err)
		}
		doc, err := s.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(doc.Value, largest) {
			t.Errorf("read back %d bytes, want the %d written", len(doc.Value), len(largest))
		}
		_, err = s.Put(ctx, key, bytes.Repeat([]byte{'x'}, s.MaxValueSize(key)+1), providers.AnyVersion)
		if !errors.Is(err, providers.ErrInvalid) {
			t.Errorf("put a byte more: %v, want an error matching ErrInvalid", err)
		}
		doc2, err := s.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if doc2.Version != doc.Version {
			t.Errorf("version %d after the refused put, want %d (unchanged)", doc2.Version, doc.Version)
		}
	})
}
