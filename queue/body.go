package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Body files are append-only; each body is one frame:
//
//	crc u32 (Castagnoli, little endian, of everything after it)
//	length u32 | idlen u8 | id | body
//
// The log record that owns a body holds (file, offset, length, crc), so a
// read is one pread of exactly the frame, checked against both the frame's
// own CRC and the one the log recorded. The id in the frame lets a frame be
// identified without the log.
const frameHdr = 9

func frameLen(idLen int, n uint32) int64 { return int64(frameHdr + idLen + int(n)) }

// appendFrame appends a body frame and returns its CRC.
func appendFrame(b []byte, id string, body []byte) ([]byte, uint32) {
	b, crc := appendFrameHeader(b, id, body)
	return append(b, body...), crc
}

// appendFrameHeader appends the part of body's frame before the body, its
// CRC covering the body too, so a large body can be written from where it
// is rather than copied behind its header.
func appendFrameHeader(b []byte, id string, body []byte) ([]byte, uint32) {
	start := len(b)
	b = append(b, 0, 0, 0, 0)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(body)))
	b = append(b, byte(len(id)))
	b = append(b, id...)
	crc := crc32.Update(crc32.Checksum(b[start+4:], castagnoli), castagnoli, body)
	binary.LittleEndian.PutUint32(b[start:], crc)
	return b, crc
}

func bodyName(num uint32) string { return fmt.Sprintf("%08x.body", num) }

func parseBodyName(name string) (uint32, bool) {
	hex, ok := strings.CutSuffix(name, ".body")
	if !ok || len(hex) != 8 {
		return 0, false
	}
	n, err := strconv.ParseUint(hex, 16, 32)
	return uint32(n), err == nil
}

// readFrame reads and checks the frame ref points at.
func readFrame(dir string, ref bodyRef, id string) ([]byte, error) {
	f, err := os.Open(filepath.Join(dir, bodyName(ref.file)))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readFrameAt(f, ref, id)
}

// readFrameAt reads and checks the frame at ref in the open body file f.
func readFrameAt(f *os.File, ref bodyRef, id string) ([]byte, error) {
	buf := make([]byte, frameLen(len(id), ref.n))
	if _, err := f.ReadAt(buf, ref.off); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("spool: read body of %s: %w: %w", id, ErrCorrupt, err)
	}
	crc := binary.LittleEndian.Uint32(buf)
	if crc != ref.crc || crc != crc32.Checksum(buf[4:], castagnoli) ||
		binary.LittleEndian.Uint32(buf[4:]) != ref.n || int(buf[8]) != len(id) || string(buf[9:9+len(id)]) != id {
		return nil, fmt.Errorf("spool: body of %s in %s at %d: %w: frame check failed", id, bodyName(ref.file), ref.off, ErrCorrupt)
	}
	return buf[frameHdr+len(id):], nil
}

// listBodyFiles returns the body files in dir with their sizes.
func listBodyFiles(dir string) (map[uint32]int64, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := make(map[uint32]int64)
	for _, de := range des {
		num, ok := parseBodyName(de.Name())
		if !ok {
			continue
		}
		fi, err := de.Info()
		if errors.Is(err, os.ErrNotExist) {
			continue // removed by a concurrent compaction
		}
		if err != nil {
			return nil, err
		}
		out[num] = fi.Size()
	}
	return out, nil
}
