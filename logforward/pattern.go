package logforward

import (
	"fmt"
	"strings"

	"github.com/convox-go/convox/providers"
)

// MaxPattern is the longest pattern Compile accepts, CloudWatch Logs'
// limit on a filter pattern.
const MaxPattern = providers.MaxSubscriptionPattern

// Pattern matches log messages with the term syntax of CloudWatch Logs
// filter patterns for unstructured events:
//
//	ERROR             messages containing ERROR (terms are case-sensitive)
//	ERROR timeout     messages containing both
//	"exit status 2"   a quoted term may hold spaces
//	?panic ?FATAL     messages containing at least one of the ?-terms
//	ERROR -retrying   messages containing ERROR but not retrying
//
// An empty pattern matches every message. The handler applies the
// subscription's pattern itself because a destination cannot rely on
// every endpoint having applied it (moto, for one, delivers every event
// whatever the pattern) and because CloudWatch Logs matches the stored
// event, which for entries written by cwlogs is a JSON envelope, whereas
// Pattern matches the entry's message.
type Pattern struct {
	all, any, none []string
}

// Compile parses a pattern. JSON ("{ $.level = ... }") and space-delimited
// ("[ip, user, ...]") patterns are not supported; they and unbalanced
// quotes return an error matching providers.ErrInvalid.
func Compile(pattern string) (Pattern, error) {
	if len(pattern) > MaxPattern {
		return Pattern{}, providers.Invalidf("logforward: a pattern of %d bytes exceeds %d", len(pattern), MaxPattern)
	}
	p := strings.TrimSpace(pattern)
	if strings.HasPrefix(p, "{") || strings.HasPrefix(p, "[") {
		return Pattern{}, providers.Invalidf("logforward: pattern %q: only term patterns are supported, not JSON or space-delimited ones", pattern)
	}
	var out Pattern
	for p != "" {
		prefix := byte(0)
		if p[0] == '?' || p[0] == '-' {
			prefix, p = p[0], p[1:]
		}
		var term string
		if strings.HasPrefix(p, `"`) {
			end := strings.IndexByte(p[1:], '"')
			if end < 0 {
				return Pattern{}, providers.Invalidf("logforward: pattern %q has an unbalanced quote", pattern)
			}
			term, p = p[1:1+end], p[2+end:]
		} else {
			end := strings.IndexAny(p, " \t")
			if end < 0 {
				end = len(p)
			}
			term, p = p[:end], p[end:]
		}
		p = strings.TrimLeft(p, " \t")
		if term == "" {
			if prefix != 0 {
				return Pattern{}, providers.Invalidf("logforward: pattern %q has an empty %c term", pattern, prefix)
			}
			continue
		}
		switch prefix {
		case '?':
			out.any = append(out.any, term)
		case '-':
			out.none = append(out.none, term)
		default:
			out.all = append(out.all, term)
		}
	}
	return out, nil
}

// MustCompile is Compile for patterns known to be valid; it panics on an
// error.
func MustCompile(pattern string) Pattern {
	p, err := Compile(pattern)
	if err != nil {
		panic(fmt.Sprint(err))
	}
	return p
}

// Match reports whether message matches the pattern.
func (p Pattern) Match(message string) bool {
	for _, t := range p.all {
		if !strings.Contains(message, t) {
			return false
		}
	}
	for _, t := range p.none {
		if strings.Contains(message, t) {
			return false
		}
	}
	if len(p.any) == 0 {
		return true
	}
	for _, t := range p.any {
		if strings.Contains(message, t) {
			return true
		}
	}
	return false
}
