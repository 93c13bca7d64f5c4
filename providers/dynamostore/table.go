package dynamostore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/convox-go/convox/internal/awserr"
	"github.com/convox-go/convox/internal/poll"
	"github.com/convox-go/convox/providers"
)

// TableAPI is the part of the DynamoDB client EnsureTable uses;
// *dynamodb.Client implements it.
type TableAPI interface {
	DescribeTable(context.Context, *dynamodb.DescribeTableInput, ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	CreateTable(context.Context, *dynamodb.CreateTableInput, ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
}

// EnsureTable creates the table a Store uses, with on-demand
// (PAY_PER_REQUEST) billing and the key schema of the package
// documentation, unless it exists, and waits until it is ACTIVE (a new
// table takes seconds on AWS) or ctx ends. It is idempotent and safe to
// call concurrently: a table being created by another caller is waited
// for. An existing table whose key schema differs returns an error
// matching providers.ErrInvalid; its billing mode is left as it is.
func EnsureTable(ctx context.Context, api TableAPI, table string) error {
	desc, err := describeTable(ctx, api, table)
	if errors.Is(err, providers.ErrNotFound) {
		_, err = api.CreateTable(ctx, &dynamodb.CreateTableInput{
			TableName:   aws.String(table),
			BillingMode: types.BillingModePayPerRequest,
			AttributeDefinitions: []types.AttributeDefinition{
				{AttributeName: aws.String(AttrNamespace), AttributeType: types.ScalarAttributeTypeS},
				{AttributeName: aws.String(AttrKey), AttributeType: types.ScalarAttributeTypeS},
			},
			KeySchema: []types.KeySchemaElement{
				{AttributeName: aws.String(AttrNamespace), KeyType: types.KeyTypeHash},
				{AttributeName: aws.String(AttrKey), KeyType: types.KeyTypeRange},
			},
		})
		// A concurrent creator makes CreateTable fail with
		// ResourceInUseException (a conflict): wait for its table.
		if s := awserr.Sentinel(err); err != nil && s != providers.ErrConflict && s != providers.ErrAlreadyExists {
			return awserr.Wrap(fmt.Sprintf("dynamostore: create table %q", table), err)
		}
		desc, err = describeTable(ctx, api, table)
	}
	if err != nil {
		return err
	}
	if err := checkSchema(table, desc); err != nil {
		return err
	}
	b := poll.Backoff{Initial: 200 * time.Millisecond, Max: 5 * time.Second}
	for desc.TableStatus != types.TableStatusActive {
		if desc.TableStatus == types.TableStatusDeleting {
			return fmt.Errorf("dynamostore: table %q is being deleted: %w", table, providers.ErrConflict)
		}
		if err := b.Wait(ctx); err != nil {
			return err
		}
		if desc, err = describeTable(ctx, api, table); err != nil {
			return err
		}
	}
	return nil
}

func describeTable(ctx context.Context, api TableAPI, table string) (*types.TableDescription, error) {
	out, err := api.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
	if err != nil {
		return nil, awserr.Wrap(fmt.Sprintf("dynamostore: describe table %q", table), err)
	}
	if out.Table == nil {
		return nil, fmt.Errorf("dynamostore: describe table %q: empty response: %w", table, providers.ErrNotFound)
	}
	return out.Table, nil
}

// checkSchema accepts a table keyed by (AttrNamespace string HASH,
// AttrKey string RANGE).
func checkSchema(table string, d *types.TableDescription) error {
	want := map[string]types.KeyType{AttrNamespace: types.KeyTypeHash, AttrKey: types.KeyTypeRange}
	got := map[string]types.KeyType{}
	for _, k := range d.KeySchema {
		got[aws.ToString(k.AttributeName)] = k.KeyType
	}
	attrTypes := map[string]types.ScalarAttributeType{}
	for _, a := range d.AttributeDefinitions {
		attrTypes[aws.ToString(a.AttributeName)] = a.AttributeType
	}
	ok := len(got) == len(want)
	for name, kt := range want {
		ok = ok && got[name] == kt && attrTypes[name] == types.ScalarAttributeTypeS
	}
	if !ok {
		return providers.Invalidf("dynamostore: table %q has key schema %v; a store needs %q (string, HASH) and %q (string, RANGE)", table, got, AttrNamespace, AttrKey)
	}
	return nil
}
