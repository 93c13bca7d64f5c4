package providers

// Validate checks a route protocol: empty (plain HTTP), HTTP, HTTPS or
// HTTP2. A balancer may support fewer (see its documentation) and refuses
// the others itself.
func (p Protocol) Validate() error {
	switch p {
	case "", HTTP, HTTPS, HTTP2:
		return nil
	}
	return Invalidf("unknown protocol %q", p)
}
