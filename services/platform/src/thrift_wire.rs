//! Checks that bytes from the network are a well-formed Thrift message before Volo decodes them.
//!
//! Volo's and pilota's decoders trust the lengths a peer declares: a string or frame length
//! beyond the bytes at hand panics (`split_to out of bounds`), a TTHeader header whose sizes do
//! not add up panics or underflows, a list count is handed to `Vec::with_capacity`, and strings
//! become `FastStr`s without a UTF-8 check (reported upstream, see SECURITY.md). This module
//! walks a message the way those decoders will, with every length checked against the bytes
//! that are really there, and says whether it is complete, needs more bytes, or must be refused.
//! What passes can be decoded without a panic and without an allocation larger than the message
//! (times a small factor for collections, which are capped at [`MAX_COLLECTION_ITEMS`]).
//!
//! Supported as Volo's server detects them: TTHeader (whose payload may be framed), framed, and
//! unframed; binary (strict) and compact protocols.

/// The most items one list, set or map may declare.
pub const MAX_COLLECTION_ITEMS: usize = 10_000;
/// The deepest nesting of structs and collections.
const MAX_DEPTH: usize = 64;

/// Why bytes were not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The message is not complete: at least this many bytes (from its start) are needed.
    NeedMore(usize),
    /// The bytes cannot be a message this server takes.
    Refused(String),
}

fn refused(why: impl Into<String>) -> Verdict {
    Verdict::Refused(why.into())
}

/// Whether the first six bytes announce TTHeader (as volo-thrift decides).
pub fn is_ttheader(head: &[u8]) -> bool {
    head.len() >= 6 && head[4..6] == [0x10, 0x00]
}

/// Whether the first six bytes announce a framed message (as volo-thrift decides).
pub fn is_framed(head: &[u8]) -> bool {
    head.len() >= 6 && (head[4..6] == [0x80, 0x01] || head[4] == 0x82)
}

/// Checks a whole length-prefixed message (TTHeader or framed, the 4-byte length included) as
/// Volo's TTHeader → framed → Thrift decoders will read it.
pub fn check_prefixed(message: &[u8], max_frame: usize) -> Result<(), Verdict> {
    let mut rest = message;
    if is_ttheader(rest) {
        rest = ttheader_payload(&rest[4..])?;
    }
    if is_framed(rest) {
        let size = i32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
        if size < 0 || size as usize > max_frame {
            return Err(refused(format!("frame size {size} is out of bounds")));
        }
        rest = &rest[4..];
    }
    match check_message(rest) {
        Ok(_) => Ok(()),
        Err(Verdict::NeedMore(_)) => Err(refused("the message is cut short")),
        Err(refused) => Err(refused),
    }
}

/// Checks an unframed message at the start of `bytes`; `Ok(n)`: its first `n` bytes are one
/// whole message.
pub fn check_message(bytes: &[u8]) -> Result<usize, Verdict> {
    let Some(&first) = bytes.first() else {
        return Err(Verdict::NeedMore(6));
    };
    let mut reader = Reader { bytes, at: 0 };
    match first {
        0x80 => binary_message(&mut reader)?,
        0x82 => compact_message(&mut reader)?,
        other => {
            return Err(refused(format!(
                "unknown protocol (first byte {other:#04x})"
            )));
        }
    }
    Ok(reader.at)
}

/// The bytes after a TTHeader header (`bytes` starts after the 4-byte length), checked as
/// volo-thrift's header parser will read them.
fn ttheader_payload(bytes: &[u8]) -> Result<&[u8], Verdict> {
    let mut reader = Reader { bytes, at: 0 };
    reader.take(2 + 2 + 4)?; // magic, flags, sequence id
    let header_size = usize::from(reader.u16()?) * 4;
    let header_start = reader.at;
    if header_size < 2 || header_start + header_size > bytes.len() {
        return Err(refused("TTHeader header size out of bounds"));
    }
    let header = Reader {
        bytes: &bytes[..header_start + header_size],
        at: header_start,
    };
    ttheader_infos(header, header_size).map_err(|verdict| match verdict {
        Verdict::NeedMore(_) => refused("TTHeader header cut short"),
        other => other,
    })?;
    Ok(&bytes[header_start + header_size..])
}

const INFO_PADDING: u8 = 0x00;
const INFO_KEY_VALUE: u8 = 0x01;
const INFO_INT_KEY_VALUE: u8 = 0x10;
const ACL_TOKEN_KEY_VALUE: u8 = 0x11;

/// Walks the header's infos with volo-thrift's own count of the header bytes left, which must
/// never go below zero, and checks the text it will take unchecked for UTF-8. (The payload's
/// protocol is Volo's to detect; the id here only has to be one it knows.)
fn ttheader_infos(mut header: Reader<'_>, header_size: usize) -> Result<(), Verdict> {
    let protocol_id = header.u8()?;
    if !matches!(protocol_id, 0 | 2 | 3 | 4) {
        return Err(refused(format!(
            "unknown TTHeader protocol id {protocol_id}"
        )));
    }
    let transforms = usize::from(header.u8()?);
    header.take(transforms)?;
    let mut left = header_size
        .checked_sub(2 + transforms)
        .ok_or_else(|| refused("TTHeader transforms overrun the header"))?;
    while left > 0 {
        spend(&mut left, 1)?;
        match header.u8()? {
            INFO_PADDING => {}
            INFO_KEY_VALUE => {
                spend(&mut left, 2)?;
                for _ in 0..header.u16()? {
                    for _ in 0..2 {
                        spend(&mut left, 2)?;
                        let len = usize::from(header.u16()?);
                        spend(&mut left, len)?;
                        utf8(header.take(len)?)?;
                    }
                }
            }
            INFO_INT_KEY_VALUE => {
                spend(&mut left, 2)?;
                for _ in 0..header.u16()? {
                    spend(&mut left, 4)?;
                    header.u16()?;
                    let len = usize::from(header.u16()?);
                    spend(&mut left, len)?;
                    utf8(header.take(len)?)?;
                }
            }
            ACL_TOKEN_KEY_VALUE => {
                spend(&mut left, 2)?;
                let len = usize::from(header.u16()?);
                spend(&mut left, len)?;
                header.take(len)?;
            }
            other => return Err(refused(format!("unknown TTHeader info id {other:#04x}"))),
        }
    }
    Ok(())
}

fn spend(left: &mut usize, n: usize) -> Result<(), Verdict> {
    *left = left
        .checked_sub(n)
        .ok_or_else(|| refused("TTHeader infos overrun the header"))?;
    Ok(())
}

/// A cursor over bytes whose every read is checked; running out is [`Verdict::NeedMore`].
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Verdict> {
        let end = self
            .at
            .checked_add(n)
            .ok_or_else(|| refused("length overflow"))?;
        let slice = self.bytes.get(self.at..end).ok_or(Verdict::NeedMore(end))?;
        self.at = end;
        Ok(slice)
    }

    fn u8(&mut self) -> Result<u8, Verdict> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, Verdict> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Result<i32, Verdict> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// An unsigned LEB128 varint of at most `max_bytes` bytes (5 for 32 bits, 10 for 64).
    fn varint(&mut self, max_bytes: usize) -> Result<u64, Verdict> {
        let mut value = 0u64;
        for i in 0..max_bytes {
            let byte = self.u8()?;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(refused("varint too long"))
    }

    /// A string's (or binary's) bytes, `len` as declared. Field text is not checked for UTF-8
    /// here: the service that reads a field owns that rule (the account service refuses a
    /// username that is not UTF-8 and repairs free text), and its answer is more useful than a
    /// closed connection.
    fn bytes(&mut self, len: i64) -> Result<(), Verdict> {
        let len = usize::try_from(len).map_err(|_| refused("negative string length"))?;
        self.take(len).map(drop)
    }

    /// A method name: its bytes, which must be UTF-8.
    fn name(&mut self, len: i64) -> Result<(), Verdict> {
        let len = usize::try_from(len).map_err(|_| refused("negative name length"))?;
        utf8(self.take(len)?)
    }
}

fn utf8(bytes: &[u8]) -> Result<(), Verdict> {
    std::str::from_utf8(bytes)
        .map(|_| ())
        .map_err(|_| refused("a string is not UTF-8"))
}

fn count(declared: i64) -> Result<usize, Verdict> {
    usize::try_from(declared)
        .ok()
        .filter(|&n| n <= MAX_COLLECTION_ITEMS)
        .ok_or_else(|| refused(format!("a collection declares {declared} items")))
}

fn deeper(depth: usize) -> Result<usize, Verdict> {
    if depth >= MAX_DEPTH {
        Err(refused("nested too deeply"))
    } else {
        Ok(depth + 1)
    }
}

// ---- binary -------------------------------------------------------------------------------

fn binary_message(r: &mut Reader<'_>) -> Result<(), Verdict> {
    let head = r.i32()?;
    let message_type = head & 0xff;
    if head >= 0 || (head as u32) & 0xffff_0000 != 0x8001_0000 || !(1..=4).contains(&message_type) {
        return Err(refused("bad binary protocol version or message type"));
    }
    let name = r.i32()?;
    r.name(i64::from(name))?;
    r.i32()?; // sequence id
    binary_value(r, 12, 0)
}

fn binary_value(r: &mut Reader<'_>, kind: u8, depth: usize) -> Result<(), Verdict> {
    match kind {
        2 | 3 => r.take(1).map(drop),  // bool, byte
        6 => r.take(2).map(drop),      // i16
        8 => r.take(4).map(drop),      // i32
        4 | 10 => r.take(8).map(drop), // double, i64
        16 => r.take(16).map(drop),    // uuid
        11 => {
            let len = r.i32()?;
            r.bytes(i64::from(len))
        }
        12 => {
            let depth = deeper(depth)?;
            loop {
                let field = r.u8()?;
                if field == 0 {
                    return Ok(());
                }
                r.take(2)?; // field id
                binary_value(r, field, depth)?;
            }
        }
        13 => {
            let depth = deeper(depth)?;
            let (key, value) = (r.u8()?, r.u8()?);
            for _ in 0..count(i64::from(r.i32()?))? {
                binary_value(r, key, depth)?;
                binary_value(r, value, depth)?;
            }
            Ok(())
        }
        14 | 15 => {
            let depth = deeper(depth)?;
            let element = r.u8()?;
            for _ in 0..count(i64::from(r.i32()?))? {
                binary_value(r, element, depth)?;
            }
            Ok(())
        }
        other => Err(refused(format!("unknown binary field type {other}"))),
    }
}

// ---- compact ------------------------------------------------------------------------------

fn compact_message(r: &mut Reader<'_>) -> Result<(), Verdict> {
    r.u8()?; // protocol id 0x82
    let version_and_type = r.u8()?;
    if version_and_type & 0x1f != 1 || !(1..=4).contains(&(version_and_type >> 5)) {
        return Err(refused("bad compact protocol version or message type"));
    }
    r.varint(5)?; // sequence id
    let name = r.varint(5)?;
    r.name(name as i64)?;
    compact_struct(r, 0)
}

fn compact_struct(r: &mut Reader<'_>, depth: usize) -> Result<(), Verdict> {
    let depth = deeper(depth)?;
    loop {
        let header = r.u8()?;
        if header == 0 {
            return Ok(());
        }
        if header >> 4 == 0 {
            r.varint(3)?; // a full (zigzag i16) field id
        }
        match header & 0x0f {
            1 | 2 => {} // a bool field carries its value in the type
            kind => compact_value(r, kind, depth)?,
        }
    }
}

fn compact_value(r: &mut Reader<'_>, kind: u8, depth: usize) -> Result<(), Verdict> {
    match kind {
        1..=3 => r.take(1).map(drop), // bool (as an element), byte
        4 => r.varint(3).map(drop),   // i16
        5 => r.varint(5).map(drop),   // i32
        6 => r.varint(10).map(drop),  // i64
        7 => r.take(8).map(drop),     // double
        13 => r.take(16).map(drop),   // uuid
        8 => {
            let len = r.varint(5)?;
            r.bytes(len as i64)
        }
        12 => compact_struct(r, depth),
        9 | 10 => {
            let depth = deeper(depth)?;
            let header = r.u8()?;
            let declared = match header >> 4 {
                15 => r.varint(5)?,
                short => u64::from(short),
            };
            let element = header & 0x0f;
            for _ in 0..count(declared as i64)? {
                compact_value(r, element, depth)?;
            }
            Ok(())
        }
        11 => {
            let depth = deeper(depth)?;
            let items = count(r.varint(5)? as i64)?;
            if items == 0 {
                return Ok(());
            }
            let kinds = r.u8()?;
            for _ in 0..items {
                compact_value(r, kinds >> 4, depth)?;
                compact_value(r, kinds & 0x0f, depth)?;
            }
            Ok(())
        }
        other => Err(refused(format!("unknown compact field type {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A strict binary CALL of `name` whose argument struct holds one string field.
    fn binary_call(name: &str, text: &str) -> Vec<u8> {
        let mut m = vec![0x80, 0x01, 0x00, 0x01];
        m.extend((name.len() as i32).to_be_bytes());
        m.extend(name.as_bytes());
        m.extend(7i32.to_be_bytes());
        m.extend([11, 0, 1]);
        m.extend((text.len() as i32).to_be_bytes());
        m.extend(text.as_bytes());
        m.extend([0]);
        m
    }

    #[test]
    fn a_whole_binary_message_is_accepted_and_every_prefix_needs_more() {
        let message = binary_call("Ping", "hello");
        assert_eq!(check_message(&message), Ok(message.len()));
        for cut in 0..message.len() {
            assert!(
                matches!(check_message(&message[..cut]), Err(Verdict::NeedMore(n)) if n > cut),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn declared_lengths_beyond_the_bytes_or_the_rules_are_refused() {
        // A method name declaring 2 GiB in a 10-byte message: more is needed, which the
        // caller refuses against its size cap without reading it.
        let mut huge = vec![0x80, 0x01, 0x00, 0x01];
        huge.extend(0x7fff_fff0i32.to_be_bytes());
        huge.extend([0, 0]);
        assert_eq!(
            check_message(&huge),
            Err(Verdict::NeedMore(8 + 0x7fff_fff0))
        );
        // A negative string length, a list of a billion items, a method name that is not UTF-8.
        let mut negative = binary_call("Ping", "");
        negative[16..20].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(matches!(check_message(&negative), Err(Verdict::Refused(_))));
        let mut list = binary_call("Ping", "")[..16].to_vec();
        list.extend([15, 0, 1, 8]);
        list.extend(1_000_000_000i32.to_be_bytes());
        assert!(matches!(check_message(&list), Err(Verdict::Refused(_))));
        let mut bad_name = binary_call("Ping", "");
        bad_name[8] = 0xff;
        assert!(matches!(check_message(&bad_name), Err(Verdict::Refused(_))));
    }

    #[test]
    fn a_framed_string_longer_than_its_frame_is_refused() {
        let mut message = binary_call("Ping", "hello");
        let at = message.len() - 10;
        message[at..at + 4].copy_from_slice(&1_000i32.to_be_bytes());
        let mut framed = (message.len() as i32).to_be_bytes().to_vec();
        framed.extend(&message);
        assert!(matches!(
            check_prefixed(&framed, 1 << 20),
            Err(Verdict::Refused(_))
        ));
    }

    #[test]
    fn ttheader_headers_whose_sizes_do_not_add_up_are_refused() {
        let payload = binary_call("Ping", "");
        let header = |infos: &[u8], words: u16| {
            let mut m = vec![0x10, 0x00, 0, 0, 0, 0, 0, 1];
            m.extend(words.to_be_bytes());
            m.extend([0, 0]); // binary, no transforms
            m.extend(infos);
            let mut whole = ((m.len() + payload.len()) as u32).to_be_bytes().to_vec();
            whole.extend(m);
            whole.extend(&payload);
            whole
        };
        // Protocol and transforms (2 bytes), one key-value pair "a" = "b" (9), padding (5):
        // four words.
        let good = header(&[0x01, 0, 1, 0, 1, b'a', 0, 1, b'b', 0, 0, 0, 0, 0], 4);
        assert_eq!(check_prefixed(&good, 1 << 20), Ok(()));
        // A key length running past the header.
        let long_key = header(&[0x01, 0, 1, 0, 200, b'a', 0, 1, b'b', 0, 0, 0, 0, 0], 4);
        assert!(matches!(
            check_prefixed(&long_key, 1 << 20),
            Err(Verdict::Refused(_))
        ));
        // A header size of zero words, or more words than there are bytes.
        for words in [0, 1_000] {
            let bad = header(&[0, 0], words);
            assert!(matches!(
                check_prefixed(&bad, 1 << 20),
                Err(Verdict::Refused(_))
            ));
        }
    }

    #[test]
    fn compact_messages_are_walked() {
        // CALL "Ping", seq 1, struct { 1: string "hi" }.
        let message = [
            0x82, 0x21, 0x01, 0x04, b'P', b'i', b'n', b'g', 0x18, 0x02, b'h', b'i', 0x00,
        ];
        assert_eq!(check_message(&message), Ok(message.len()));
        assert_eq!(check_message(&message[..9]), Err(Verdict::NeedMore(10)));
    }
}
