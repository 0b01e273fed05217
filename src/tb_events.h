// TensorBoard event files written without TensorFlow or protobuf libraries.
//
// File DIR/events.out.tfevents.<unix time>.<hostname>, a sequence of records
//   uint64 length (LE) | uint32 masked CRC-32C of the 8 length bytes |
//   data (length bytes) | uint32 masked CRC-32C of data
// with masked(crc) = ((crc >> 15) | (crc << 17)) + 0xa282ead8. Each data is a
// hand-encoded tensorflow.Event protobuf:
//   Event   { double wall_time = 1; int64 step = 2; string file_version = 3;
//             Summary summary = 5; }
//   Summary { repeated Value value = 1; }
//   Value   { string tag = 1; float simple_value = 2; }
// The first record carries file_version "brain.Event:2", each later one a
// single scalar. Only rank 0 should open a writer.
#ifndef ZSSEG_TB_EVENTS_H
#define ZSSEG_TB_EVENTS_H

#include <stddef.h>
#include <stdint.h>

typedef struct TbWriter TbWriter;

// Create DIR if missing (its parent must exist) and start a new event file in
// it. Fatal with the path named when DIR or the file cannot be created.
TbWriter* tb_open(const char* dir);
// Append one scalar summary (tag at most 1024 bytes). Buffered: call tb_flush
// to make it visible to a running TensorBoard.
void tb_scalar(TbWriter* w, const char* tag, float value, long step);
void tb_flush(TbWriter* w);
// Flush, close and free (NULL is a no-op).
void tb_close(TbWriter* w);
// Path of the event file.
const char* tb_path(const TbWriter* w);

// Protobuf base-128 varint of v into out (at least 10 bytes); returns its length.
size_t tb_varint(uint8_t* out, uint64_t v);

#endif  // ZSSEG_TB_EVENTS_H
