// Package cwlogstest is an in-process CloudWatch Logs endpoint for tests.
//
// A Server speaks the wire protocol of the service (awsJson1.1 over HTTP)
// for the operations the cwlogs provider uses — CreateLogGroup,
// DeleteLogGroup, DescribeLogGroups, CreateLogStream, PutLogEvents,
// FilterLogEvents — and StartLiveTail, whose response is an AWS event
// stream (application/vnd.amazon.eventstream) encoded with the SDK's
// eventstream Encoder: an initial-response message, a sessionStart event,
// then a sessionUpdate event per Interval carrying the events ingested
// since the previous one. The emulator the other AWS tests use has no
// StartLiveTail; this server exists so that live tails, and the fallback
// from them, are tested through the real SDK client.
//
// It also checks what the real service checks and an emulator may not:
// PutLogEvents batches must be in chronological order, hold at most
// 10,000 events and 1,048,576 bytes (counting 26 bytes per event) and span
// at most 24 hours; FilterLogEvents takes quoted-term filter patterns.
//
//	srv := cwlogstest.NewServer(t)
//	client := cloudwatchlogs.NewFromConfig(awstest.ConfigFor(srv.URL))
//	srv.SetLiveTail(cwlogstest.LiveTail{Error: "LimitExceededException"})
package cwlogstest

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
)

// API limits the server enforces, those of the real service.
const (
	MaxBatchEvents = 10000
	MaxBatchBytes  = 1048576
	EventOverhead  = 26
	MaxBatchSpan   = 24 * time.Hour
	// MaxUpdateEvents is the most events one sessionUpdate carries; more
	// in one interval are sampled down to it and the update is marked
	// sampled, as the service does.
	MaxUpdateEvents = 500
)

// Account and Region appear in the ARNs of log groups.
const (
	Account = "123456789012"
	Region  = "us-east-1"
)

// LiveTail controls how StartLiveTail behaves. The zero value serves
// sessions normally.
type LiveTail struct {
	// Error, when set, is the error code StartLiveTail fails with before
	// any session starts: "LimitExceededException" (too many concurrent
	// sessions), "UnrecognizedClientException" (what an endpoint without
	// the operation answers), ...
	Error string
	// EndAfter, when positive, ends each session with a
	// SessionTimeoutException once it has delivered that many events.
	EndAfter int
	// Sampled marks every sessionUpdate as sampled and drops its events,
	// as the service does when events arrive faster than it streams them.
	Sampled bool
	// Interval is the time between sessionUpdate events; 50ms when zero.
	Interval time.Duration
}

// Server is an in-process CloudWatch Logs endpoint. It is safe for
// concurrent use.
type Server struct {
	// URL is the endpoint to give the SDK client (its BaseEndpoint).
	URL string

	srv *httptest.Server

	mu       sync.Mutex
	groups   map[string]*group
	seq      int64
	sessions map[*session]bool
	calls    map[string]int
	live     LiveTail
	pageCap  int
	unmerged bool
	active   chan struct{} // signaled when a session starts
}

type group struct {
	name    string
	created int64
	streams map[string]bool
	events  []event
}

type event struct {
	seq       int64
	stream    string
	timestamp int64
	ingestion int64
	message   string
}

// NewServer starts a server and stops it when the test ends.
func NewServer(t testing.TB) *Server {
	s := &Server{
		groups:   map[string]*group{},
		sessions: map[*session]bool{},
		calls:    map[string]int{},
		active:   make(chan struct{}, 1),
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	t.Cleanup(func() {
		s.srv.CloseClientConnections()
		s.srv.Close()
	})
	return s
}

// SetLiveTail changes how StartLiveTail behaves from the next call on.
func (s *Server) SetLiveTail(l LiveTail) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.live = l
}

// SetFilterPageCap makes FilterLogEvents return at most n events per call
// (with a nextToken when more match), whatever limit the caller asks for,
// as the service does when a search is cut short; zero removes the cap.
func (s *Server) SetFilterPageCap(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pageCap = n
}

// SetUnmerged makes FilterLogEvents return a group's events stream by
// stream (each stream in time order, the streams one after another) and
// ignore interleaved, as endpoints that do not merge the streams do; its
// nextToken then counts the events returned. The service itself always
// merges ("As of June 17, 2019, this parameter is ignored and the value
// is assumed to be true").
func (s *Server) SetUnmerged(unmerged bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unmerged = unmerged
}

// Calls returns how many times operation op was called.
func (s *Server) Calls(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// Sessions returns the number of live tail sessions streaming now.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// SessionStarted returns a channel that receives a value when a live tail
// session has started (it holds at most one pending signal).
func (s *Server) SessionStarted() <-chan struct{} { return s.active }

// GroupARN returns the ARN of a log group, without the ":*" suffix.
func GroupARN(name string) string {
	return fmt.Sprintf("arn:aws:logs:%s:%s:log-group:%s", Region, Account, name)
}

// apiError is an error response of the service.
type apiError struct {
	code, message string
}

func fail(code, format string, args ...any) *apiError {
	return &apiError{code: code, message: fmt.Sprintf(format, args...)}
}

func writeError(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", e.code)
	w.WriteHeader(http.StatusBadRequest)
	json.NewEncoder(w).Encode(map[string]string{"__type": e.code, "message": e.message})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), "Logs_20140328.")
	if r.Method != http.MethodPost || !ok {
		writeError(w, fail("UnknownOperationException", "no operation in X-Amz-Target %q", r.Header.Get("X-Amz-Target")))
		return
	}
	s.mu.Lock()
	s.calls[op]++
	s.mu.Unlock()
	if op == "StartLiveTail" {
		s.startLiveTail(w, r)
		return
	}
	handlers := map[string]func([]byte) (any, *apiError){
		"CreateLogGroup":    s.createLogGroup,
		"DeleteLogGroup":    s.deleteLogGroup,
		"DescribeLogGroups": s.describeLogGroups,
		"CreateLogStream":   s.createLogStream,
		"PutLogEvents":      s.putLogEvents,
		"FilterLogEvents":   s.filterLogEvents,
	}
	h, ok := handlers[op]
	if !ok {
		writeError(w, fail("UnknownOperationException", "operation %s is not served", op))
		return
	}
	var body bytes.Buffer
	if _, err := body.ReadFrom(r.Body); err != nil {
		writeError(w, fail("SerializationException", "read body: %v", err))
		return
	}
	out, e := h(body.Bytes())
	if e != nil {
		writeError(w, e)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	json.NewEncoder(w).Encode(out)
}

func decode(body []byte, v any) *apiError {
	if err := json.Unmarshal(body, v); err != nil {
		return fail("SerializationException", "%v", err)
	}
	return nil
}

func nowMillis() int64 { return time.Now().UnixMilli() }

func (s *Server) createLogGroup(body []byte) (any, *apiError) {
	var in struct{ LogGroupName string }
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.groups[in.LogGroupName]; ok {
		return nil, fail("ResourceAlreadyExistsException", "The specified log group already exists")
	}
	s.groups[in.LogGroupName] = &group{name: in.LogGroupName, created: nowMillis(), streams: map[string]bool{}}
	return struct{}{}, nil
}

func (s *Server) deleteLogGroup(body []byte) (any, *apiError) {
	var in struct{ LogGroupName string }
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.groups[in.LogGroupName]; !ok {
		return nil, fail("ResourceNotFoundException", "The specified log group does not exist.")
	}
	delete(s.groups, in.LogGroupName)
	return struct{}{}, nil
}

func (s *Server) describeLogGroups(body []byte) (any, *apiError) {
	var in struct {
		LogGroupNamePrefix string
		NextToken          string
		Limit              int
	}
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for name := range s.groups {
		if strings.HasPrefix(name, in.LogGroupNamePrefix) && name > in.NextToken {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	limit := in.Limit
	if limit <= 0 || limit > 50 {
		limit = 50
	}
	type logGroup struct {
		LogGroupName string `json:"logGroupName"`
		Arn          string `json:"arn"`
		LogGroupArn  string `json:"logGroupArn"`
		CreationTime int64  `json:"creationTime"`
	}
	out := struct {
		LogGroups []logGroup `json:"logGroups"`
		NextToken string     `json:"nextToken,omitempty"`
	}{LogGroups: []logGroup{}}
	for i, name := range names {
		if i == limit {
			out.NextToken = names[i-1]
			break
		}
		out.LogGroups = append(out.LogGroups, logGroup{name, GroupARN(name) + ":*", GroupARN(name), s.groups[name].created})
	}
	return out, nil
}

func (s *Server) createLogStream(body []byte) (any, *apiError) {
	var in struct{ LogGroupName, LogStreamName string }
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	if in.LogStreamName == "" || len(in.LogStreamName) > 512 || strings.ContainsAny(in.LogStreamName, ":*") {
		return nil, fail("InvalidParameterException", "invalid log stream name %q", in.LogStreamName)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[in.LogGroupName]
	if !ok {
		return nil, fail("ResourceNotFoundException", "The specified log group does not exist.")
	}
	if g.streams[in.LogStreamName] {
		return nil, fail("ResourceAlreadyExistsException", "The specified log stream already exists")
	}
	g.streams[in.LogStreamName] = true
	return struct{}{}, nil
}

func (s *Server) putLogEvents(body []byte) (any, *apiError) {
	var in struct {
		LogGroupName, LogStreamName string
		LogEvents                   []struct {
			Timestamp int64
			Message   string
		}
	}
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	n := len(in.LogEvents)
	if n == 0 || n > MaxBatchEvents {
		return nil, fail("InvalidParameterException", "a batch holds 1 to %d events, not %d", MaxBatchEvents, n)
	}
	size := 0
	for i, e := range in.LogEvents {
		size += len(e.Message) + EventOverhead
		if i > 0 && e.Timestamp < in.LogEvents[i-1].Timestamp {
			return nil, fail("InvalidParameterException", "Log events in a single PutLogEvents request must be in chronological order.")
		}
	}
	if size > MaxBatchBytes {
		return nil, fail("InvalidParameterException", "batch of %d bytes exceeds %d", size, MaxBatchBytes)
	}
	if span := time.Duration(in.LogEvents[n-1].Timestamp-in.LogEvents[0].Timestamp) * time.Millisecond; span > MaxBatchSpan {
		return nil, fail("InvalidParameterException", "The batch of log events in a single PutLogEvents request cannot span more than 24 hours.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[in.LogGroupName]
	if !ok {
		return nil, fail("ResourceNotFoundException", "The specified log group does not exist.")
	}
	if !g.streams[in.LogStreamName] {
		return nil, fail("ResourceNotFoundException", "The specified log stream does not exist.")
	}
	now := nowMillis()
	for _, e := range in.LogEvents {
		s.seq++
		ev := event{seq: s.seq, stream: in.LogStreamName, timestamp: e.Timestamp, ingestion: now, message: e.Message}
		g.events = append(g.events, ev)
		for sess := range s.sessions {
			sess.offer(g.name, ev)
		}
	}
	return struct{}{}, nil
}

// pattern is a parsed filter pattern: every term must occur.
type pattern []string

func parsePattern(p string) (pattern, *apiError) {
	p = strings.TrimSpace(p)
	if p == "" {
		return nil, nil
	}
	if strings.HasPrefix(p, "{") || strings.HasPrefix(p, "[") || strings.HasPrefix(p, "%") {
		return nil, fail("InvalidParameterException", "this server only takes term filter patterns, not %q", p)
	}
	var terms pattern
	for p != "" {
		if p[0] == '"' {
			end := strings.IndexByte(p[1:], '"')
			if end < 0 {
				return nil, fail("InvalidParameterException", "unterminated quoted term in %q", p)
			}
			terms = append(terms, p[1:1+end])
			p = strings.TrimSpace(p[end+2:])
			continue
		}
		word, rest, _ := strings.Cut(p, " ")
		terms = append(terms, word)
		p = strings.TrimSpace(rest)
	}
	return terms, nil
}

func (p pattern) match(msg string) bool {
	for _, t := range p {
		if !strings.Contains(msg, t) {
			return false
		}
	}
	return true
}

type filteredEvent struct {
	LogStreamName string `json:"logStreamName"`
	Timestamp     int64  `json:"timestamp"`
	Message       string `json:"message"`
	IngestionTime int64  `json:"ingestionTime"`
	EventID       string `json:"eventId"`
}

func eventID(e event) string { return fmt.Sprintf("%020d%016d", e.timestamp, e.seq) }

func (s *Server) filterLogEvents(body []byte) (any, *apiError) {
	var in struct {
		LogGroupName        string
		LogGroupIdentifier  string
		LogStreamNames      []string
		LogStreamNamePrefix string
		StartTime           *int64
		EndTime             *int64
		FilterPattern       string
		NextToken           string
		Limit               int
	}
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	if len(in.LogStreamNames) > 0 && in.LogStreamNamePrefix != "" {
		return nil, fail("InvalidParameterException", "logStreamNames and logStreamNamePrefix are mutually exclusive")
	}
	if in.StartTime != nil && in.EndTime != nil && *in.EndTime < *in.StartTime {
		return nil, fail("InvalidParameterException", "endTime is before startTime")
	}
	pat, e := parsePattern(in.FilterPattern)
	if e != nil {
		return nil, e
	}
	limit := in.Limit
	if limit <= 0 || limit > MaxBatchEvents {
		limit = MaxBatchEvents
	}
	var after struct{ T, S int64 }
	if in.NextToken != "" {
		raw, err := base64.RawURLEncoding.DecodeString(in.NextToken)
		if err == nil {
			err = json.Unmarshal(raw, &after)
		}
		if err != nil {
			return nil, fail("InvalidParameterException", "The specified nextToken is invalid.")
		}
	}
	name := in.LogGroupName
	if name == "" {
		name = strings.TrimPrefix(in.LogGroupIdentifier, GroupARN(""))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pageCap > 0 {
		limit = min(limit, s.pageCap)
	}
	g, ok := s.groups[name]
	if !ok {
		return nil, fail("ResourceNotFoundException", "The specified log group does not exist.")
	}
	events := slices.Clone(g.events)
	slices.SortFunc(events, func(a, b event) int {
		if s.unmerged {
			return cmp.Or(strings.Compare(a.stream, b.stream), cmp.Compare(a.timestamp, b.timestamp), cmp.Compare(a.seq, b.seq))
		}
		return cmp.Or(cmp.Compare(a.timestamp, b.timestamp), cmp.Compare(a.seq, b.seq))
	})
	out := struct {
		Events    []filteredEvent `json:"events"`
		NextToken string          `json:"nextToken,omitempty"`
	}{Events: []filteredEvent{}}
	selected := func(ev event) bool {
		switch {
		case len(in.LogStreamNames) > 0 && !slices.Contains(in.LogStreamNames, ev.stream):
		case !strings.HasPrefix(ev.stream, in.LogStreamNamePrefix):
		case in.StartTime != nil && ev.timestamp < *in.StartTime:
		case in.EndTime != nil && ev.timestamp > *in.EndTime:
		case !pat.match(ev.message):
		default:
			return true
		}
		return false
	}
	if s.unmerged {
		// The token counts the selected events already returned.
		var sel []event
		for _, ev := range events {
			if selected(ev) {
				sel = append(sel, ev)
			}
		}
		from := min(max(after.T, 0), int64(len(sel)))
		to := min(from+int64(limit), int64(len(sel)))
		for _, ev := range sel[from:to] {
			out.Events = append(out.Events, filteredEvent{ev.stream, ev.timestamp, ev.message, ev.ingestion, eventID(ev)})
		}
		if to < int64(len(sel)) {
			raw, _ := json.Marshal(struct{ T, S int64 }{to, 0})
			out.NextToken = base64.RawURLEncoding.EncodeToString(raw)
		}
		return out, nil
	}
	var last event
	for _, ev := range events {
		switch {
		case in.NextToken != "" && (ev.timestamp < after.T || ev.timestamp == after.T && ev.seq <= after.S):
		case !selected(ev):
		case len(out.Events) == limit:
			raw, _ := json.Marshal(struct{ T, S int64 }{last.timestamp, last.seq})
			out.NextToken = base64.RawURLEncoding.EncodeToString(raw)
			return out, nil
		default:
			out.Events = append(out.Events, filteredEvent{ev.stream, ev.timestamp, ev.message, ev.ingestion, eventID(ev)})
			last = ev
		}
	}
	return out, nil
}

// session is one live tail session.
type session struct {
	groups   map[string]bool
	names    []string
	prefixes []string
	pattern  pattern
	mu       sync.Mutex
	queue    []liveEvent
}

type liveEvent struct {
	LogStreamName      string `json:"logStreamName"`
	LogGroupIdentifier string `json:"logGroupIdentifier"`
	Message            string `json:"message"`
	Timestamp          int64  `json:"timestamp"`
	IngestionTime      int64  `json:"ingestionTime"`
}

// offer queues ev if the session selects it; the server's lock is held.
func (ss *session) offer(groupName string, ev event) {
	if !ss.groups[groupName] {
		return
	}
	if len(ss.names) > 0 && !slices.Contains(ss.names, ev.stream) {
		return
	}
	if len(ss.prefixes) > 0 && !slices.ContainsFunc(ss.prefixes, func(p string) bool { return strings.HasPrefix(ev.stream, p) }) {
		return
	}
	if !ss.pattern.match(ev.message) {
		return
	}
	ss.mu.Lock()
	ss.queue = append(ss.queue, liveEvent{ev.stream, GroupARN(groupName), ev.message, ev.timestamp, ev.ingestion})
	ss.mu.Unlock()
}

func (ss *session) take() []liveEvent {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	q := ss.queue
	ss.queue = nil
	return q
}

func (s *Server) startLiveTail(w http.ResponseWriter, r *http.Request) {
	var in struct {
		LogGroupIdentifiers   []string
		LogStreamNames        []string
		LogStreamNamePrefixes []string
		LogEventFilterPattern string
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		writeError(w, fail("SerializationException", "%v", err))
		return
	}
	s.mu.Lock()
	live := s.live
	ss := &session{groups: map[string]bool{}, names: in.LogStreamNames, prefixes: in.LogStreamNamePrefixes}
	var e *apiError
	switch {
	case live.Error != "":
		e = fail(live.Error, "StartLiveTail refused by the test server")
	case len(in.LogGroupIdentifiers) == 0 || len(in.LogGroupIdentifiers) > 10:
		e = fail("InvalidParameterException", "1 to 10 log group identifiers")
	case len(in.LogStreamNames) > 0 && len(in.LogStreamNamePrefixes) > 0:
		e = fail("InvalidParameterException", "logStreamNames and logStreamNamePrefixes are mutually exclusive")
	}
	for _, id := range in.LogGroupIdentifiers {
		name, ok := strings.CutPrefix(id, GroupARN(""))
		if e == nil && (!ok || strings.HasSuffix(id, "*")) {
			e = fail("InvalidParameterException", "log group identifier %q is not a log group ARN", id)
		}
		if _, exists := s.groups[name]; e == nil && !exists {
			e = fail("ResourceNotFoundException", "log group %q does not exist", name)
		}
		ss.groups[name] = true
	}
	if e == nil {
		ss.pattern, e = parsePattern(in.LogEventFilterPattern)
	}
	if e != nil {
		s.mu.Unlock()
		writeError(w, e)
		return
	}
	s.sessions[ss] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.sessions, ss)
		s.mu.Unlock()
	}()

	w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	enc := eventstream.NewEncoder()
	send := func(msgType, kind string, payload any) bool {
		raw, _ := json.Marshal(payload)
		var msg eventstream.Message
		msg.Headers.Set(":message-type", eventstream.StringValue(msgType))
		if msgType == "exception" {
			msg.Headers.Set(":exception-type", eventstream.StringValue(kind))
		} else {
			msg.Headers.Set(":event-type", eventstream.StringValue(kind))
		}
		msg.Headers.Set(":content-type", eventstream.StringValue("application/json"))
		msg.Payload = raw
		if err := enc.Encode(w, msg); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}
	if !send("event", "initial-response", struct{}{}) {
		return
	}
	if !send("event", "sessionStart", map[string]any{
		"requestId": "test", "sessionId": fmt.Sprintf("session-%p", ss),
		"logGroupIdentifiers": in.LogGroupIdentifiers, "logStreamNames": in.LogStreamNames,
		"logStreamNamePrefixes": in.LogStreamNamePrefixes, "logEventFilterPattern": in.LogEventFilterPattern,
	}) {
		return
	}
	select {
	case s.active <- struct{}{}:
	default:
	}
	interval := live.Interval
	if interval <= 0 {
		interval = 50 * time.Millisecond
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	delivered := 0
	for {
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
		events := ss.take()
		sampled := live.Sampled || len(events) > MaxUpdateEvents
		switch {
		case live.Sampled:
			events = nil
		case len(events) > MaxUpdateEvents:
			events = events[:MaxUpdateEvents]
		}
		if live.EndAfter > 0 && delivered+len(events) > live.EndAfter {
			events = events[:live.EndAfter-delivered]
		}
		if events == nil {
			events = []liveEvent{}
		}
		if !send("event", "sessionUpdate", map[string]any{"sessionMetadata": map[string]bool{"sampled": sampled}, "sessionResults": events}) {
			return
		}
		delivered += len(events)
		if live.EndAfter > 0 && delivered >= live.EndAfter {
			send("exception", "SessionTimeoutException", map[string]string{"message": "Session timed out"})
			return
		}
	}
}
