package logforward

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"

	"github.com/aws/aws-lambda-go/events"

	"github.com/convox-go/convox/providers"
)

// Message types of a CloudWatch Logs subscription payload.
const (
	// DataMessage carries log events.
	DataMessage = "DATA_MESSAGE"
	// ControlMessage is what CloudWatch Logs sends to check that a
	// destination is reachable; it carries no app's events.
	ControlMessage = "CONTROL_MESSAGE"
)

// Default limits (see Limits).
const (
	DefaultMaxInvocationBytes = 8 << 20
	DefaultMaxPayloadBytes    = 1 << 20
	DefaultMaxDecodedBytes    = 16 << 20
	DefaultMaxEvents          = 20000
	DefaultMaxRecords         = 10000
)

// Limits bound every size the handler reads. Zero fields take the
// defaults, which hold what AWS sends: an invocation is at most 6 MB, a
// Kinesis record at most 1 MiB and a subscription payload at most 1 MiB
// compressed; CloudWatch Logs batches at most 10,000 events of at most
// 1 MiB each.
type Limits struct {
	// MaxInvocationBytes bounds the JSON document of one invocation
	// (DefaultMaxInvocationBytes).
	MaxInvocationBytes int
	// MaxPayloadBytes bounds one compressed payload, after base64
	// decoding (DefaultMaxPayloadBytes).
	MaxPayloadBytes int
	// MaxDecodedBytes bounds one payload after gunzip
	// (DefaultMaxDecodedBytes); a payload that inflates further is
	// refused, not read.
	MaxDecodedBytes int
	// MaxEvents bounds the events of one payload (DefaultMaxEvents).
	MaxEvents int
	// MaxRecords bounds the Kinesis records of one invocation
	// (DefaultMaxRecords, the largest batch size Lambda allows).
	MaxRecords int
}

func (l Limits) withDefaults() Limits {
	def := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	def(&l.MaxInvocationBytes, DefaultMaxInvocationBytes)
	def(&l.MaxPayloadBytes, DefaultMaxPayloadBytes)
	def(&l.MaxDecodedBytes, DefaultMaxDecodedBytes)
	def(&l.MaxEvents, DefaultMaxEvents)
	def(&l.MaxRecords, DefaultMaxRecords)
	return l
}

// Payload is a decoded CloudWatch Logs subscription payload.
type Payload = events.CloudwatchLogsData

// DecodeBase64 decodes the "awslogs.data" field of a Lambda invocation
// from CloudWatch Logs (base64 of the gzip payload) with Decode.
func DecodeBase64(data string, lim Limits) (Payload, error) {
	lim = lim.withDefaults()
	if base64.StdEncoding.DecodedLen(len(data)) > lim.MaxPayloadBytes {
		return Payload{}, fmt.Errorf("%w: the payload's %d base64 bytes exceed %d bytes decoded", providers.ErrInvalid, len(data), lim.MaxPayloadBytes)
	}
	raw, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		return Payload{}, fmt.Errorf("%w: the payload is not base64: %w", providers.ErrInvalid, err)
	}
	return Decode(raw, lim)
}

// Decode gunzips and parses a subscription payload (what a Kinesis or
// Firehose destination receives, or the base64-decoded awslogs.data of a
// Lambda invocation), within lim. Errors match providers.ErrInvalid: a
// payload that breaks a limit or is not gzip JSON cannot succeed later.
func Decode(data []byte, lim Limits) (Payload, error) {
	lim = lim.withDefaults()
	if len(data) > lim.MaxPayloadBytes {
		return Payload{}, fmt.Errorf("%w: the payload's %d bytes exceed %d", providers.ErrInvalid, len(data), lim.MaxPayloadBytes)
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return Payload{}, fmt.Errorf("%w: the payload is not gzip: %w", providers.ErrInvalid, err)
	}
	defer zr.Close()
	text, err := io.ReadAll(io.LimitReader(zr, int64(lim.MaxDecodedBytes)+1))
	if err != nil {
		return Payload{}, fmt.Errorf("%w: gunzip the payload: %w", providers.ErrInvalid, err)
	}
	if len(text) > lim.MaxDecodedBytes {
		return Payload{}, fmt.Errorf("%w: the payload inflates beyond %d bytes", providers.ErrInvalid, lim.MaxDecodedBytes)
	}
	var p Payload
	if err := json.Unmarshal(text, &p); err != nil {
		return Payload{}, fmt.Errorf("%w: the payload is not a subscription message: %w", providers.ErrInvalid, err)
	}
	switch p.MessageType {
	case DataMessage, ControlMessage:
	default:
		return Payload{}, fmt.Errorf("%w: unknown messageType %q", providers.ErrInvalid, p.MessageType)
	}
	if len(p.LogEvents) > lim.MaxEvents {
		return Payload{}, fmt.Errorf("%w: the payload's %d events exceed %d", providers.ErrInvalid, len(p.LogEvents), lim.MaxEvents)
	}
	return p, nil
}

// Encode returns the payload as CloudWatch Logs sends it to a Kinesis or
// Firehose destination: gzip-compressed JSON. Tests and benchmarks use it
// to make payloads.
func Encode(p Payload) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	json.NewEncoder(zw).Encode(p)
	zw.Close()
	return b.Bytes()
}
