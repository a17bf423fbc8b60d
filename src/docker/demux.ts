// Docker's multiplexed stream format (8-byte frame headers: stream type, size) for non-TTY
// containers, when it arrives as one buffer (logs without follow).

/** Docker's multiplexed log format (8-byte frame headers) to plain text. */
export function demuxToText(raw: Buffer): string {
  const parts: string[] = [];
  let offset = 0;
  while (offset + 8 <= raw.length && (raw[offset] === 1 || raw[offset] === 2 || raw[offset] === 0)) {
    const size = raw.readUInt32BE(offset + 4);
    parts.push(raw.subarray(offset + 8, offset + 8 + size).toString('utf8'));
    offset += 8 + size;
  }
  return offset === 0 ? raw.toString('utf8') : parts.join('');
}
