package dynamostore

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/convox-go/convox/internal/awserr"
	"github.com/convox-go/convox/providers"
)

// Attribute names of the table's items (see the package documentation).
const (
	AttrNamespace = "pk"  // partition key (string): Options.Namespace
	AttrKey       = "sk"  // sort key (string): the document key
	AttrValue     = "val" // binary: the document value
	AttrVersion   = "ver" // number: the document version
	AttrWrite     = "wid" // binary: a random ID of the Put that wrote the item
)

// MaxItemSize is the largest DynamoDB item in bytes (400 KB): the lengths
// of its attribute names and values together.
const MaxItemSize = 400 << 10

// itemOverhead is the size of an item's attributes other than its
// namespace, key and value: the five attribute names, the largest version
// number (a number takes at most 21 bytes) and the 16-byte write ID.
const itemOverhead = len(AttrNamespace) + len(AttrKey) + len(AttrValue) + len(AttrVersion) + len(AttrWrite) + 21 + 16

// MaxValueSize returns the largest value Put stores under key: what a
// DynamoDB item holds besides the key, the namespace and the other
// attributes. Put refuses a larger value with providers.ErrInvalid before
// any call.
func (s *Store) MaxValueSize(key string) int {
	return MaxItemSize - itemOverhead - len(s.ns) - len(key)
}

// DefaultNamespace is the partition key value of documents when
// Options.Namespace is empty.
const DefaultNamespace = "convox"

// Page sizes of List: the size of a page when ListOptions.Limit is zero,
// and the largest page.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// API is the part of the DynamoDB client the Store uses; *dynamodb.Client
// implements it.
type API interface {
	GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(context.Context, *dynamodb.DeleteItemInput, ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Query(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
}

// Options configure a Store. Every zero field takes its default.
type Options struct {
	// Namespace is the partition key value of every document of the
	// store, so that several racks can share a table; DefaultNamespace
	// when empty. Stores with different namespaces never see each other's
	// documents.
	Namespace string
	// Now is the clock that seeds the version of new documents; nil means
	// time.Now.
	Now func() time.Time
}

// Store is a providers.Store on a DynamoDB table. It is safe for
// concurrent use, also by several programs sharing the table.
type Store struct {
	api   API
	table string
	ns    string
	now   func() time.Time
}

var _ providers.Store = (*Store)(nil)

// New returns a Store of the documents of table, which must exist with the
// schema EnsureTable creates. api is usually a *dynamodb.Client; opts may
// be nil.
func New(api API, table string, opts *Options) *Store {
	s := &Store{api: api, table: table, ns: DefaultNamespace, now: time.Now}
	if opts != nil {
		if opts.Namespace != "" {
			s.ns = opts.Namespace
		}
		if opts.Now != nil {
			s.now = opts.Now
		}
	}
	return s
}

// names maps the expression attribute names every request uses.
func names(attrs ...string) map[string]string {
	m := make(map[string]string, len(attrs))
	for _, a := range attrs {
		m["#"+a] = a
	}
	return m
}

func (s *Store) itemKey(key string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		AttrNamespace: &types.AttributeValueMemberS{Value: s.ns},
		AttrKey:       &types.AttributeValueMemberS{Value: key},
	}
}

func num(v int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}

// decode turns an item into a document.
func decode(item map[string]types.AttributeValue) (providers.Doc, error) {
	var d providers.Doc
	k, ok := item[AttrKey].(*types.AttributeValueMemberS)
	if !ok {
		return d, fmt.Errorf("dynamostore: item without a string %q attribute", AttrKey)
	}
	d.Key = k.Value
	ver, ok := item[AttrVersion].(*types.AttributeValueMemberN)
	if !ok {
		return d, fmt.Errorf("dynamostore: item %q without a number %q attribute", d.Key, AttrVersion)
	}
	v, err := strconv.ParseInt(ver.Value, 10, 64)
	if err != nil {
		return d, fmt.Errorf("dynamostore: item %q: version %q: %w", d.Key, ver.Value, err)
	}
	d.Version = v
	switch val := item[AttrValue].(type) {
	case *types.AttributeValueMemberB:
		d.Value = val.Value
	case nil:
		d.Value = []byte{}
	default:
		return d, fmt.Errorf("dynamostore: item %q: value attribute %q is %T, not binary", d.Key, AttrValue, val)
	}
	if d.Value == nil {
		d.Value = []byte{}
	}
	return d, nil
}

// Get implements providers.Store with a strongly consistent GetItem.
func (s *Store) Get(ctx context.Context, key string) (providers.Doc, error) {
	if err := providers.ValidateKey(key); err != nil {
		return providers.Doc{}, err
	}
	out, err := s.api.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.table),
		Key:            s.itemKey(key),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return providers.Doc{}, awserr.Wrap(fmt.Sprintf("dynamostore: get %q", key), err)
	}
	if len(out.Item) == 0 {
		return providers.Doc{}, fmt.Errorf("dynamostore: get %q: %w", key, providers.ErrNotFound)
	}
	return decode(out.Item)
}

// Put implements providers.Store with one conditional UpdateItem (see the
// package documentation).
func (s *Store) Put(ctx context.Context, key string, value []byte, ifVersion int64) (int64, error) {
	if err := providers.ValidateKey(key); err != nil {
		return 0, err
	}
	if ifVersion < providers.AnyVersion {
		return 0, providers.Invalidf("dynamostore: put %q: version %d", key, ifVersion)
	}
	if limit := s.MaxValueSize(key); len(value) > limit {
		return 0, providers.Invalidf("dynamostore: put %q: a value of %d bytes is larger than the %d bytes a DynamoDB item holds under this key", key, len(value), limit)
	}
	if value == nil {
		value = []byte{}
	}
	// The write ID lets a Put recognize its own write: when the SDK retries
	// a request whose first attempt was applied but whose answer was lost,
	// the retry's condition fails on the version that attempt wrote.
	wid := make([]byte, 16)
	rand.Read(wid)
	in := &dynamodb.UpdateItemInput{
		TableName:                aws.String(s.table),
		Key:                      s.itemKey(key),
		ExpressionAttributeNames: names(AttrValue, AttrVersion, AttrWrite),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":val": &types.AttributeValueMemberB{Value: value},
			":wid": &types.AttributeValueMemberB{Value: wid},
		},
		ReturnValues: types.ReturnValueUpdatedNew,
	}
	initial := max(s.now().UnixMicro(), 1)
	switch {
	case ifVersion == 0:
		in.UpdateExpression = aws.String("SET #val = :val, #ver = :init, #wid = :wid")
		in.ConditionExpression = aws.String("attribute_not_exists(#ver)")
		in.ExpressionAttributeValues[":init"] = num(initial)
	case ifVersion == providers.AnyVersion:
		in.UpdateExpression = aws.String("SET #val = :val, #ver = if_not_exists(#ver, :init) + :one, #wid = :wid")
		in.ExpressionAttributeValues[":init"] = num(initial - 1)
		in.ExpressionAttributeValues[":one"] = num(1)
	default:
		in.UpdateExpression = aws.String("SET #val = :val, #ver = #ver + :one, #wid = :wid")
		in.ConditionExpression = aws.String("#ver = :expected")
		in.ExpressionAttributeValues[":expected"] = num(ifVersion)
		in.ExpressionAttributeValues[":one"] = num(1)
	}
	op := fmt.Sprintf("dynamostore: put %q at version %d", key, ifVersion)
	out, err := s.api.UpdateItem(ctx, in)
	var failed *types.ConditionalCheckFailedException
	if errors.As(err, &failed) {
		if v, ok := s.ownWrite(ctx, key, wid); ok {
			return v, nil
		}
	}
	if err != nil {
		return 0, awserr.Wrap(op, err)
	}
	return parseVersion(key, out.Attributes)
}

// ownWrite reports whether the item of key was last written by the Put
// with write ID wid, and its version if so.
func (s *Store) ownWrite(ctx context.Context, key string, wid []byte) (int64, bool) {
	out, err := s.api.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.table),
		Key:            s.itemKey(key),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil || len(out.Item) == 0 {
		return 0, false
	}
	got, ok := out.Item[AttrWrite].(*types.AttributeValueMemberB)
	if !ok || !bytes.Equal(got.Value, wid) {
		return 0, false
	}
	v, err := parseVersion(key, out.Item)
	return v, err == nil
}

// parseVersion reads the version attribute of an item or a response.
func parseVersion(key string, attrs map[string]types.AttributeValue) (int64, error) {
	ver, ok := attrs[AttrVersion].(*types.AttributeValueMemberN)
	if !ok {
		return 0, fmt.Errorf("dynamostore: put %q: the response has no version", key)
	}
	v, err := strconv.ParseInt(ver.Value, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("dynamostore: put %q: version %q: %w", key, ver.Value, err)
	}
	return v, nil
}

// Delete implements providers.Store with one DeleteItem, conditional on
// the version unless ifVersion is providers.AnyVersion.
func (s *Store) Delete(ctx context.Context, key string, ifVersion int64) error {
	if err := providers.ValidateKey(key); err != nil {
		return err
	}
	if ifVersion == 0 || ifVersion < providers.AnyVersion {
		return providers.Invalidf("dynamostore: delete %q: version %d (use a stored version or AnyVersion)", key, ifVersion)
	}
	in := &dynamodb.DeleteItemInput{TableName: aws.String(s.table), Key: s.itemKey(key)}
	if ifVersion != providers.AnyVersion {
		in.ConditionExpression = aws.String("#ver = :expected")
		in.ExpressionAttributeNames = names(AttrVersion)
		in.ExpressionAttributeValues = map[string]types.AttributeValue{":expected": num(ifVersion)}
	}
	_, err := s.api.DeleteItem(ctx, in)
	if err == nil {
		return nil
	}
	op := fmt.Sprintf("dynamostore: delete %q at version %d", key, ifVersion)
	var failed *types.ConditionalCheckFailedException
	if !errors.As(err, &failed) {
		return awserr.Wrap(op, err)
	}
	// The condition failed: tell a missing document from another version.
	switch _, gerr := s.Get(ctx, key); {
	case errors.Is(gerr, providers.ErrNotFound):
		return fmt.Errorf("%s: %w", op, providers.ErrNotFound)
	case gerr != nil:
		return fmt.Errorf("%s: the condition failed and reading the document failed: %w", op, gerr)
	}
	return awserr.Wrap(op, err)
}

// listToken is the decoded form of a List page token.
type listToken struct {
	Prefix  string `json:"p"` // digest of the prefix
	Reverse bool   `json:"r"`
	After   string `json:"k"` // the last key returned
}

func prefixDigest(prefix string) string {
	sum := sha256.Sum256([]byte(prefix))
	return hex.EncodeToString(sum[:8])
}

func encodeToken(t listToken) string {
	raw, _ := json.Marshal(t)
	return base64.RawURLEncoding.EncodeToString(raw)
}

func decodeToken(token, prefix string, reverse bool) (string, error) {
	var t listToken
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err == nil {
		err = json.Unmarshal(raw, &t)
	}
	if err != nil {
		return "", providers.Invalidf("dynamostore: list: malformed page token")
	}
	if t.Prefix != prefixDigest(prefix) || t.Reverse != reverse || !strings.HasPrefix(t.After, prefix) {
		return "", providers.Invalidf("dynamostore: list: the page token belongs to another listing")
	}
	return t.After, nil
}

// List implements providers.Store with one Query on the namespace's
// partition (see the package documentation for paging).
func (s *Store) List(ctx context.Context, prefix string, opts providers.ListOptions) (providers.DocPage, error) {
	if !utf8.ValidString(prefix) {
		return providers.DocPage{}, providers.Invalidf("dynamostore: list: prefix %q is not valid UTF-8", prefix)
	}
	if opts.Limit < 0 {
		return providers.DocPage{}, providers.Invalidf("dynamostore: list: negative limit %d", opts.Limit)
	}
	limit := min(opts.Limit, MaxLimit)
	if limit == 0 {
		limit = DefaultLimit
	}
	after := ""
	if opts.Token != "" {
		var err error
		if after, err = decodeToken(opts.Token, prefix, opts.Reverse); err != nil {
			return providers.DocPage{}, err
		}
	}
	if len(prefix) > providers.MaxKeyLen {
		return providers.DocPage{}, nil
	}
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		ConsistentRead:            aws.Bool(true),
		ScanIndexForward:          aws.Bool(!opts.Reverse),
		Limit:                     aws.Int32(int32(limit)),
		ExpressionAttributeNames:  names(AttrNamespace, AttrKey),
		ExpressionAttributeValues: map[string]types.AttributeValue{":ns": &types.AttributeValueMemberS{Value: s.ns}},
	}
	switch {
	case after != "" && opts.Reverse:
		in.KeyConditionExpression = aws.String("#pk = :ns AND #sk < :after")
		in.ExpressionAttributeValues[":after"] = &types.AttributeValueMemberS{Value: after}
	case after != "":
		in.KeyConditionExpression = aws.String("#pk = :ns AND #sk > :after")
		in.ExpressionAttributeValues[":after"] = &types.AttributeValueMemberS{Value: after}
	case prefix != "":
		in.KeyConditionExpression = aws.String("#pk = :ns AND begins_with(#sk, :prefix)")
		in.ExpressionAttributeValues[":prefix"] = &types.AttributeValueMemberS{Value: prefix}
	default:
		in.KeyConditionExpression = aws.String("#pk = :ns")
	}
	out, err := s.api.Query(ctx, in)
	if err != nil {
		return providers.DocPage{}, awserr.Wrap(fmt.Sprintf("dynamostore: list %q", prefix), err)
	}
	var page providers.DocPage
	for _, item := range out.Items {
		d, err := decode(item)
		if err != nil {
			return providers.DocPage{}, err
		}
		// A continuation reads keys after the last one returned; the first
		// key without the prefix ends the listing (keys are ordered).
		if !strings.HasPrefix(d.Key, prefix) {
			return page, nil
		}
		page.Docs = append(page.Docs, d)
	}
	if len(out.LastEvaluatedKey) > 0 {
		last := after
		if n := len(page.Docs); n > 0 {
			last = page.Docs[n-1].Key
		} else if k, ok := out.LastEvaluatedKey[AttrKey].(*types.AttributeValueMemberS); ok {
			last = k.Value
		}
		if last != "" {
			page.Next = encodeToken(listToken{Prefix: prefixDigest(prefix), Reverse: opts.Reverse, After: last})
		}
	}
	return page, nil
}
