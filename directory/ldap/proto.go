package ldap

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	ber "github.com/go-asn1-ber/asn1-ber"
)

// The LDAPv3 messages (RFC 4511 §4), read and written with go-asn1-ber.

// Application tags of the protocol operations (RFC 4511 §4.2 to §4.12).
const (
	opBindRequest      = 0
	opBindResponse     = 1
	opUnbindRequest    = 2
	opSearchRequest    = 3
	opSearchEntry      = 4
	opSearchDone       = 5
	opModifyRequest    = 6
	opAddRequest       = 8
	opDelRequest       = 10
	opModDNRequest     = 12
	opCompareRequest   = 14
	opAbandonRequest   = 16
	opExtendedRequest  = 23
	opExtendedResponse = 24
)

// Result codes (RFC 4511 Appendix A).
const (
	resultSuccess                      = 0
	resultOperationsError              = 1
	resultProtocolError                = 2
	resultSizeLimitExceeded            = 4
	resultAuthMethodNotSupported       = 7
	resultUnavailableCriticalExtension = 12
	resultNoSuchObject                 = 32
	resultInvalidDNSyntax              = 34
	resultInappropriateAuthentication  = 48
	resultInvalidCredentials           = 49
	resultInsufficientAccessRights     = 50
	resultBusy                         = 51
	resultUnavailable                  = 52
	resultUnwillingToPerform           = 53
	resultOther                        = 80
)

// OIDs of the extended operations and controls this view knows.
const (
	oidStartTLS       = "1.3.6.1.4.1.1466.20037"  // RFC 4511 §4.14
	oidWhoAmI         = "1.3.6.1.4.1.4203.1.11.3" // RFC 4532
	oidNoticeOfDiscon = "1.3.6.1.4.1.1466.20036"  // RFC 4511 §4.4.1
	oidPaging         = "1.2.840.113556.1.4.319"  // RFC 2696
)

// maxRequest bounds one LDAPMessage from a client: binds and searches
// are a few hundred bytes; a larger message closes the connection
// before it is read.
const maxRequest = 64 << 10

var errTooLarge = fmt.Errorf("a request of more than %d bytes", maxRequest)

// readMessage reads one LDAPMessage: its SEQUENCE header, its length
// (definite, at most maxRequest), then its content, decoded with
// go-asn1-ber within those bytes only.
func readMessage(r *bufio.Reader) (*ber.Packet, error) {
	tag, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	if tag != 0x30 {
		return nil, fmt.Errorf("not an LDAPMessage (first byte %#x)", tag)
	}
	b, err := r.ReadByte()
	if err != nil {
		return nil, unexpected(err)
	}
	length := int(b)
	head := []byte{tag, b}
	if b&0x80 != 0 {
		n := int(b & 0x7f)
		if n == 0 || n > 4 {
			return nil, errors.New("an LDAPMessage of indefinite or impossible length")
		}
		length = 0
		for range n {
			c, err := r.ReadByte()
			if err != nil {
				return nil, unexpected(err)
			}
			head = append(head, c)
			length = length<<8 | int(c)
			if length > maxRequest {
				return nil, errTooLarge
			}
		}
	}
	if length > maxRequest {
		return nil, errTooLarge
	}
	buf := make([]byte, len(head)+length)
	copy(buf, head)
	if _, err := io.ReadFull(r, buf[len(head):]); err != nil {
		return nil, unexpected(err)
	}
	return decodePacket(buf)
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// decodePacket decodes a whole message, turning a panic of the decoder
// on a malformed packet into an error.
func decodePacket(buf []byte) (p *ber.Packet, err error) {
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("malformed BER: %v", r)
		}
	}()
	return ber.DecodePacketErr(buf)
}

// request is one decoded LDAPMessage.
type request struct {
	id       int64
	op       *ber.Packet
	controls []control
}

type control struct {
	oid      string
	critical bool
	value    []byte
}

var errMalformed = errors.New("malformed LDAPMessage (RFC 4511 §4.1.1)")

// parseRequest checks the envelope of an LDAPMessage.
func parseRequest(p *ber.Packet) (*request, error) {
	if p.ClassType != ber.ClassUniversal || p.TagType != ber.TypeConstructed || p.Tag != ber.TagSequence ||
		len(p.Children) < 2 || len(p.Children) > 3 {
		return nil, errMalformed
	}
	id, ok := intValue(p.Children[0], ber.TagInteger)
	if !ok || id < 0 || id > 1<<31-1 {
		return nil, errMalformed
	}
	r := &request{id: id, op: p.Children[1]}
	if r.op.ClassType != ber.ClassApplication {
		return nil, errMalformed
	}
	if len(p.Children) == 3 {
		c := p.Children[2]
		if c.ClassType != ber.ClassContext || c.Tag != 0 || c.TagType != ber.TypeConstructed {
			return nil, errMalformed
		}
		for _, cp := range c.Children {
			if cp.TagType != ber.TypeConstructed || len(cp.Children) == 0 {
				return nil, errMalformed
			}
			oid, err := octets(cp.Children[0])
			if err != nil {
				return nil, errMalformed
			}
			ctl := control{oid: oid}
			for _, x := range cp.Children[1:] {
				switch {
				case x.ClassType == ber.ClassUniversal && x.Tag == ber.TagBoolean:
					b, ok := x.Value.(bool)
					if !ok {
						return nil, errMalformed
					}
					ctl.critical = b
				case x.ClassType == ber.ClassUniversal && x.Tag == ber.TagOctetString && x.TagType == ber.TypePrimitive:
					ctl.value = x.Data.Bytes()
				default:
					return nil, errMalformed
				}
			}
			r.controls = append(r.controls, ctl)
		}
	}
	return r, nil
}

// intValue reads an INTEGER or ENUMERATED.
func intValue(p *ber.Packet, tag ber.Tag) (int64, bool) {
	if p == nil || p.ClassType != ber.ClassUniversal || p.TagType != ber.TypePrimitive || p.Tag != tag {
		return 0, false
	}
	v, ok := p.Value.(int64)
	return v, ok
}

// message wraps a protocol operation in an LDAPMessage.
func message(id int64, op *ber.Packet, controls ...*ber.Packet) *ber.Packet {
	m := ber.NewSequence("LDAPMessage")
	m.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, id, ""))
	m.AppendChild(op)
	if len(controls) > 0 {
		cs := ber.Encode(ber.ClassContext, ber.TypeConstructed, 0, nil, "")
		for _, c := range controls {
			cs.AppendChild(c)
		}
		m.AppendChild(cs)
	}
	return m
}

// result is an LDAPResult (RFC 4511 §4.1.9) with the application tag of
// the response.
func result(tag ber.Tag, code int, matchedDN, diagnostic string) *ber.Packet {
	p := ber.Encode(ber.ClassApplication, ber.TypeConstructed, tag, nil, "")
	p.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, int64(code), ""))
	p.AppendChild(octetString(matchedDN))
	p.AppendChild(octetString(diagnostic))
	return p
}

func octetString(s string) *ber.Packet {
	return ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, s, "")
}

// extendedResponse is an ExtendedResponse (RFC 4511 §4.12).
func extendedResponse(code int, diagnostic, name string, value []byte) *ber.Packet {
	p := result(opExtendedResponse, code, "", diagnostic)
	if name != "" {
		p.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 10, name, ""))
	}
	if value != nil {
		p.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 11, string(value), ""))
	}
	return p
}

// searchEntry is a SearchResultEntry (RFC 4511 §4.5.2).
func searchEntry(e *Entry, typesOnly bool) *ber.Packet {
	p := ber.Encode(ber.ClassApplication, ber.TypeConstructed, opSearchEntry, nil, "")
	p.AppendChild(octetString(e.DN))
	attrs := ber.NewSequence("")
	for _, a := range e.Attrs {
		pa := ber.NewSequence("")
		pa.AppendChild(octetString(a.Name))
		vals := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSet, nil, "")
		if !typesOnly {
			for _, v := range a.Values {
				vals.AppendChild(octetString(v))
			}
		}
		pa.AppendChild(vals)
		attrs.AppendChild(pa)
	}
	p.AppendChild(attrs)
	return p
}

// pagingControl encodes the response control of RFC 2696.
func pagingControl(cookie string) *ber.Packet {
	c := ber.NewSequence("")
	c.AppendChild(octetString(oidPaging))
	v := ber.NewSequence("")
	v.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, int64(0), ""))
	v.AppendChild(octetString(cookie))
	c.AppendChild(octetString(string(v.Bytes())))
	return c
}

// parsePaging reads the value of a paged-results request control: the
// page size and the cookie.
func parsePaging(value []byte) (size int, cookie string, err error) {
	p, err := decodePacket(value)
	if err != nil || p.TagType != ber.TypeConstructed || len(p.Children) != 2 {
		return 0, "", errMalformed
	}
	n, ok := intValue(p.Children[0], ber.TagInteger)
	c, err := octets(p.Children[1])
	if !ok || err != nil || n < 0 {
		return 0, "", errMalformed
	}
	return int(min(n, 1<<20)), c, nil
}
