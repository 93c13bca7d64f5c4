package providers_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/convox-go/convox/providers"
)

func TestProtocolValidate(t *testing.T) {
	tests := []struct {
		name    string
		p       providers.Protocol
		wantErr string
	}{
		{"empty is plain HTTP", "", ""},
		{"http is accepted", providers.HTTP, ""},
		{"https is accepted", providers.HTTPS, ""},
		{"http2 is accepted", providers.HTTP2, ""},
		{"an unknown protocol is refused", "gopher", `unknown protocol "gopher"`},
		{"protocols are case-sensitive", "HTTP", `unknown protocol "HTTP"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, providers.ErrInvalid) {
				t.Fatalf("Validate() = %v, want an error wrapping ErrInvalid", err)
			}
			if got := err.Error(); !strings.Contains(got, tt.wantErr) {
				t.Errorf("Validate() = %q, want it to contain %q", got, tt.wantErr)
			}
		})
	}
}
