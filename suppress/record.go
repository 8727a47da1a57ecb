package suppress

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// A record on disk: length (4 bytes, big-endian, of the payload), CRC-32C
// of the payload (4 bytes), payload. The payload is an op byte, then
// tenant, address and reason as uvarint-length strings, the source byte
// and the added and expiry times as uvarint Unix seconds.
const (
	opAdd    = 1
	opRemove = 2

	recordHeader = 8
	// maxRecord bounds one payload: an address (≤ 254 bytes), a tenant and
	// a reason (each ≤ MaxText) and a few numbers.
	maxRecord = 4096
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func appendRecord(b []byte, op byte, e *Entry) []byte {
	start := len(b)
	b = append(b, make([]byte, recordHeader)...)
	b = append(b, op)
	for _, s := range []string{e.Tenant, e.Address, e.Reason} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = append(b, sourceCode(e.Source))
	b = binary.AppendUvarint(b, uint64(unix32(e.Added)))
	b = binary.AppendUvarint(b, uint64(unix32(e.Expires)))
	payload := b[start+recordHeader:]
	binary.BigEndian.PutUint32(b[start:], uint32(len(payload)))
	binary.BigEndian.PutUint32(b[start+4:], crc32.Checksum(payload, castagnoli))
	return b
}

var errTorn = errors.New("torn record")

// readRecord decodes the record at the start of b and returns its size.
// errTorn: b ends inside the record or its checksum fails.
func readRecord(b []byte) (op byte, e Entry, n int, err error) {
	if len(b) < recordHeader {
		return 0, e, 0, errTorn
	}
	size := int(binary.BigEndian.Uint32(b))
	if size > maxRecord || len(b) < recordHeader+size {
		return 0, e, 0, errTorn
	}
	payload := b[recordHeader : recordHeader+size]
	if crc32.Checksum(payload, castagnoli) != binary.BigEndian.Uint32(b[4:]) {
		return 0, e, 0, errTorn
	}
	p := payload
	if len(p) < 1 {
		return 0, e, 0, fmt.Errorf("empty record")
	}
	op, p = p[0], p[1:]
	var strs [3]string
	for i := range strs {
		l, k := binary.Uvarint(p)
		if k <= 0 || uint64(len(p)-k) < l {
			return 0, e, 0, fmt.Errorf("bad record: string %d", i)
		}
		strs[i], p = string(p[k:k+int(l)]), p[k+int(l):]
	}
	if len(p) < 1 {
		return 0, e, 0, fmt.Errorf("bad record: no source")
	}
	src := p[0]
	p = p[1:]
	var times [2]uint64
	for i := range times {
		v, k := binary.Uvarint(p)
		if k <= 0 {
			return 0, e, 0, fmt.Errorf("bad record: time %d", i)
		}
		times[i], p = v, p[k:]
	}
	if op != opAdd && op != opRemove {
		return 0, e, 0, fmt.Errorf("bad record: op %d", op)
	}
	e = Entry{Tenant: strs[0], Address: strs[1], Reason: strs[2], Source: sourceName(src)}
	e.Added = fromUnix(times[0])
	e.Expires = fromUnix(times[1])
	return op, e, recordHeader + size, nil
}
