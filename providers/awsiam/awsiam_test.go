package awsiam_test

import (
	"errors"
	"go/ast"
	"go/doc"
	"go/doc/comment"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/convox-go/convox/providers"
	"github.com/convox-go/convox/providers/albbalancer"
	"github.com/convox-go/convox/providers/awsiam"
	"github.com/convox-go/convox/providers/cfnstack"
	"github.com/convox-go/convox/providers/cwlogs"
	"github.com/convox-go/convox/providers/dynamostore"
	"github.com/convox-go/convox/providers/ecrregistry"
	"github.com/convox-go/convox/providers/ecsscheduler"
	"github.com/convox-go/convox/providers/elbbalancer"
	"github.com/convox-go/convox/providers/kinesislogs"
)

func TestPolicy(t *testing.T) {
	tests := []struct {
		name    string
		actions [][]string
		want    string
	}{
		{
			name:    "the lists of several providers are merged, sorted and deduplicated",
			actions: [][]string{{"logs:PutLogEvents", "ecs:RunTask"}, {"ecs:RunTask", "dynamodb:GetItem"}},
			want: `{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": [
        "dynamodb:GetItem",
        "ecs:RunTask",
        "logs:PutLogEvents"
      ],
      "Resource": "*"
    }
  ]
}
`,
		},
		{
			name:    "actions differing only in case are one, spelled as first given, as IAM compares them case-insensitively",
			actions: [][]string{{"ecs:RunTask"}, {"ecs:runtask", "ECS:RUNTASK"}},
			want: `{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": [
        "ecs:RunTask"
      ],
      "Resource": "*"
    }
  ]
}
`,
		},
		{
			name:    "empty and nil lists add nothing; wildcards are actions too",
			actions: [][]string{nil, {}, {"s3:Get*"}},
			want: `{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": [
        "s3:Get*"
      ],
      "Resource": "*"
    }
  ]
}
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := awsiam.Policy(tt.actions...)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, string(got)); diff != "" {
				t.Errorf("policy (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPolicyRefusesBadInput(t *testing.T) {
	tests := []struct {
		name    string
		actions [][]string
	}{
		{"no action at all is invalid", nil},
		{"only empty lists are no action", [][]string{{}, nil}},
		{"an action without a service prefix is invalid", [][]string{{"RunTask"}}},
		{"an empty action is invalid", [][]string{{"ecs:RunTask", ""}}},
		{"an action with spaces is invalid", [][]string{{" ecs:RunTask"}}},
		{"an action with an empty name is invalid", [][]string{{"ecs:"}}},
		{"a colon alone is invalid", [][]string{{":"}}},
		{"an action with two colons is invalid", [][]string{{"ecs:Run:Task"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := awsiam.Policy(tt.actions...)
			if !errors.Is(err, providers.ErrInvalid) {
				t.Errorf("Policy = %q, %v; want an error matching ErrInvalid", got, err)
			}
		})
	}
}

// TestPermissionsMatchDocs checks that each AWS provider package's
// Permissions returns exactly the actions its package documentation lists
// under "# Permissions" (the code blocks of that section), in the same
// order, so that the documentation and the code cannot drift apart.
func TestPermissionsMatchDocs(t *testing.T) {
	tests := []struct {
		name string
		pkg  string
		got  []string
	}{
		{"ecsscheduler returns its documented actions", "ecsscheduler", ecsscheduler.Permissions()},
		{"ecrregistry returns its documented actions", "ecrregistry", ecrregistry.Permissions()},
		{"albbalancer returns its documented actions", "albbalancer", albbalancer.Permissions()},
		{"elbbalancer returns its documented actions", "elbbalancer", elbbalancer.Permissions()},
		{"cwlogs returns its documented actions", "cwlogs", cwlogs.Permissions()},
		{"kinesislogs returns its documented actions", "kinesislogs", kinesislogs.Permissions()},
		{"dynamostore returns its documented actions", "dynamostore", dynamostore.Permissions()},
		{"cfnstack returns its documented actions", "cfnstack", cfnstack.Permissions()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := documentedActions(t, filepath.Join("..", tt.pkg))
			if len(want) == 0 {
				t.Fatalf("the package documentation of %s lists no actions under # Permissions", tt.pkg)
			}
			if diff := cmp.Diff(want, tt.got); diff != "" {
				t.Errorf("%s.Permissions() against its package documentation (-want +got):\n%s", tt.pkg, diff)
			}
			if _, err := awsiam.Policy(tt.got); err != nil {
				t.Errorf("a policy of %s's actions: %v", tt.pkg, err)
			}
		})
	}
}

// documentedActions returns the actions listed in the code blocks of the
// "# Permissions" section of the package documentation in dir: the first
// word of each line.
func documentedActions(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var files []*ast.File
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.ParseComments|parser.PackageClauseOnly)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	pkg, err := doc.NewFromFiles(fset, files, "github.com/convox-go/convox/providers/"+filepath.Base(dir))
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	in := false
	for _, b := range pkg.Parser().Parse(pkg.Doc).Content {
		switch b := b.(type) {
		case *comment.Heading:
			in = plain(b.Text) == "Permissions"
		case *comment.Code:
			if !in {
				continue
			}
			for _, line := range strings.Split(b.Text, "\n") {
				if f := strings.Fields(line); len(f) > 0 {
					actions = append(actions, f[0])
				}
			}
		}
	}
	return actions
}

// plain returns the text of a heading.
func plain(text []comment.Text) string {
	var sb strings.Builder
	for _, t := range text {
		if p, ok := t.(comment.Plain); ok {
			sb.WriteString(string(p))
		}
	}
	return sb.String()
}
