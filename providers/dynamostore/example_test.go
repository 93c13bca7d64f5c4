package dynamostore_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/dynamostore"
)

// Example creates the table once, then updates a document with
// compare-and-swap, retrying when another writer got there first.
func Example() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Fatal(err)
	}
	db := dynamodb.NewFromConfig(cfg)
	if err := dynamostore.EnsureTable(ctx, db, "convox"); err != nil {
		log.Fatal(err)
	}
	store := dynamostore.New(db, "convox", &dynamostore.Options{Namespace: "production"})

	for {
		doc, err := store.Get(ctx, "settings/web")
		if errors.Is(err, providers.ErrNotFound) {
			doc = providers.Doc{Key: "settings/web"} // Version 0: create only
		} else if err != nil {
			log.Fatal(err)
		}
		v, err := store.Put(ctx, doc.Key, append(doc.Value, '+'), doc.Version)
		if errors.Is(err, providers.ErrConflict) {
			continue // a concurrent writer won; read again
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("stored version", v)
		return
	}
}
