//! The on-disk encoding of entries, namespace records and outbox writes.
//!
//! Pure functions, no I/O: the durable backend stores what these produce, and recovery reads it
//! back through them. Every field is length-checked on the way in, so a damaged record is a
//! [`DecodeError`] (and a clear startup error naming the file), never a panic. Integers are
//! big-endian; each record starts with a format byte so a later release can change the layout
//! and still read what this one wrote.

use bytes::Bytes;
use edgekv_core::{Entry, RegionId, Timestamp, Version};

use edgekv_core::{AccountId, NamespaceId, NamespaceRecord, ReplicatedWrite};

/// The only record format so far.
const FORMAT: u8 = 1;

const TOMBSTONE: u8 = 1;
const HAS_EXPIRATION: u8 = 2;
const HAS_METADATA: u8 = 4;

const KEY_WRITE: u8 = 1;
const NAMESPACE_WRITE: u8 = 2;

/// A stored record that cannot be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("undecodable record: {0}")]
pub struct DecodeError(pub(crate) &'static str);

/// Appends `entry` in the stored layout.
pub(crate) fn encode_entry(entry: &Entry, out: &mut Vec<u8>) {
    out.push(FORMAT);
    put_version(entry.version, out);
    let mut flags = 0;
    if entry.value.is_none() {
        flags |= TOMBSTONE;
    }
    if entry.expiration.is_some() {
        flags |= HAS_EXPIRATION;
    }
    if entry.metadata.is_some() {
        flags |= HAS_METADATA;
    }
    out.push(flags);
    if let Some(expiration) = entry.expiration {
        out.extend_from_slice(&expiration.to_be_bytes());
    }
    if let Some(metadata) = &entry.metadata {
        out.extend_from_slice(&(metadata.len() as u32).to_be_bytes());
        out.extend_from_slice(metadata);
    }
    if let Some(value) = &entry.value {
        out.extend_from_slice(value);
    }
}

/// Reads an entry written by [`encode_entry`]. `record` is shared, not copied: the value is a
/// slice of it.
pub(crate) fn decode_entry(record: &Bytes) -> Result<Entry, DecodeError> {
    let (mut entry, value_at) = decode_parts(record)?;
    entry.value = value_at.map(|at| record.slice(at..));
    Ok(entry)
}

/// Reads everything of an entry but its value, which is left empty (`Some` of nothing) for a
/// live entry: what recovery needs to rebuild the index without copying values.
pub(crate) fn decode_head(record: &[u8]) -> Result<Entry, DecodeError> {
    let (mut entry, value_at) = decode_parts(record)?;
    entry.value = value_at.map(|_| Bytes::new());
    Ok(entry)
}

/// An entry without its value, and where the value starts (`None` for a tombstone).
fn decode_parts(record: &[u8]) -> Result<(Entry, Option<usize>), DecodeError> {
    let mut r = Reader { buf: record, at: 0 };
    if r.u8()? != FORMAT {
        return Err(DecodeError("unknown entry format"));
    }
    let version = r.version()?;
    let flags = r.u8()?;
    let expiration = if flags & HAS_EXPIRATION != 0 { Some(r.u64()?) } else { None };
    let metadata = if flags & HAS_METADATA != 0 {
        let len = r.u32()? as usize;
        Some(r.bytes(len)?)
    } else {
        None
    };
    let value_at = if flags & TOMBSTONE != 0 {
        if r.at != record.len() {
            return Err(DecodeError("tombstone with a value"));
        }
        None
    } else {
        Some(r.at)
    };
    Ok((Entry { value: None, metadata, expiration, version }, value_at))
}

/// Appends a namespace record in the stored layout.
pub(crate) fn encode_record(record: &NamespaceRecord, out: &mut Vec<u8>) {
    out.push(FORMAT);
    put_version(record.version, out);
    out.push(u8::from(record.deleted));
    put_short(record.account.as_str().as_bytes(), out);
    put_short(record.id.as_str().as_bytes(), out);
    out.extend_from_slice(record.title.as_bytes());
}

/// Reads a record written by [`encode_record`].
pub(crate) fn decode_record(buf: &[u8]) -> Result<NamespaceRecord, DecodeError> {
    let mut r = Reader { buf, at: 0 };
    if r.u8()? != FORMAT {
        return Err(DecodeError("unknown namespace record format"));
    }
    let version = r.version()?;
    let deleted = match r.u8()? {
        0 => false,
        1 => true,
        _ => return Err(DecodeError("bad deleted flag")),
    };
    let account = AccountId::parse(r.short_str()?).ok_or(DecodeError("bad account id"))?;
    let id = NamespaceId::parse(r.short_str()?).ok_or(DecodeError("bad namespace id"))?;
    let title = std::str::from_utf8(r.rest_slice())
        .map_err(|_| DecodeError("title is not UTF-8"))?
        .to_owned();
    Ok(NamespaceRecord { account, id, title, deleted, version })
}

/// Appends a replicated write (an outbox record).
pub(crate) fn encode_write(write: &ReplicatedWrite, out: &mut Vec<u8>) {
    match write {
        ReplicatedWrite::Key { account, namespace, key, entry } => {
            out.push(KEY_WRITE);
            put_short(account.as_str().as_bytes(), out);
            put_short(namespace.as_str().as_bytes(), out);
            out.extend_from_slice(&(key.len() as u32).to_be_bytes());
            out.extend_from_slice(key.as_bytes());
            encode_entry(entry, out);
        }
        ReplicatedWrite::Namespace(record) => {
            out.push(NAMESPACE_WRITE);
            encode_record(record, out);
        }
    }
}

/// Reads a write encoded by [`encode_write`].
pub(crate) fn decode_write(record: &Bytes) -> Result<ReplicatedWrite, DecodeError> {
    let mut r = Reader { buf: record, at: 0 };
    match r.u8()? {
        KEY_WRITE => {
            let account = AccountId::parse(r.short_str()?).ok_or(DecodeError("bad account id"))?;
            let namespace =
                NamespaceId::parse(r.short_str()?).ok_or(DecodeError("bad namespace id"))?;
            let len = r.u32()? as usize;
            let key = std::str::from_utf8(r.slice(len)?)
                .map_err(|_| DecodeError("key is not UTF-8"))?
                .to_owned();
            let entry = decode_entry(&record.slice(r.at..))?;
            Ok(ReplicatedWrite::Key { account, namespace, key, entry })
        }
        NAMESPACE_WRITE => Ok(ReplicatedWrite::Namespace(decode_record(r.rest_slice())?)),
        _ => Err(DecodeError("unknown write kind")),
    }
}

fn put_version(version: Version, out: &mut Vec<u8>) {
    out.extend_from_slice(&version.ts.0.to_be_bytes());
    put_short(version.origin.as_str().as_bytes(), out);
}

fn put_short(field: &[u8], out: &mut Vec<u8>) {
    // Every short field (region, account, namespace id) is at most 64 bytes by validation.
    out.push(field.len().min(u8::MAX as usize) as u8);
    out.extend_from_slice(&field[..field.len().min(u8::MAX as usize)]);
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn slice(&mut self, len: usize) -> Result<&[u8], DecodeError> {
        let end = self.at.checked_add(len).ok_or(DecodeError("length overflow"))?;
        let field = self.buf.get(self.at..end).ok_or(DecodeError("record is truncated"))?;
        self.at = end;
        Ok(field)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0; N];
        out.copy_from_slice(self.slice(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn short_str(&mut self) -> Result<&str, DecodeError> {
        let len = self.u8()? as usize;
        std::str::from_utf8(self.slice(len)?).map_err(|_| DecodeError("field is not UTF-8"))
    }

    fn version(&mut self) -> Result<Version, DecodeError> {
        let ts = Timestamp(self.u64()?);
        let origin: RegionId =
            self.short_str()?.parse().map_err(|_| DecodeError("bad origin region"))?;
        Ok(Version::new(ts, origin))
    }

    fn rest_slice(&mut self) -> &[u8] {
        let rest = self.buf.get(self.at..).unwrap_or_default();
        self.at = self.buf.len();
        rest
    }
}

impl Reader<'_> {
    /// Copies `len` bytes out (a record's short fields; the value itself is sliced, not copied).
    fn bytes(&mut self, len: usize) -> Result<Bytes, DecodeError> {
        Ok(Bytes::copy_from_slice(self.slice(len)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn version(ts: u64) -> Version {
        Version::new(Timestamp(ts), "wnam".parse().unwrap())
    }

    proptest! {
        #[test]
        fn entries_round_trip(
            ts in any::<u64>(),
            value in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
            metadata in proptest::option::of("[ -~]{0,32}"),
            expiration in proptest::option::of(any::<u64>()),
        ) {
            let entry = Entry {
                value: value.map(Bytes::from),
                metadata: metadata.map(Bytes::from),
                expiration,
                version: version(ts),
            };
            let mut buf = Vec::new();
            encode_entry(&entry, &mut buf);
            prop_assert_eq!(decode_entry(&Bytes::from(buf)).unwrap(), entry);
        }

        #[test]
        fn truncated_records_are_errors_not_panics(cut in 0usize..80) {
            let write = ReplicatedWrite::Key {
                account: AccountId::parse("acct").unwrap(),
                namespace: NamespaceId::random(),
                key: "some/key".into(),
                entry: Entry {
                    value: Some(Bytes::from_static(b"v")),
                    metadata: Some(Bytes::from_static(b"{}")),
                    expiration: Some(9),
                    version: version(7),
                },
            };
            let mut buf = Vec::new();
            encode_write(&write, &mut buf);
            let decoded = decode_write(&Bytes::from(buf[..cut.min(buf.len())].to_vec()));
            if cut >= buf.len() {
                prop_assert_eq!(decoded.unwrap(), write);
            } else {
                // A cut inside the value still decodes (a shorter value); anything else is an
                // error. Neither panics.
                let _ = decoded;
            }
        }
    }

    #[test]
    fn namespace_writes_round_trip() {
        let record = NamespaceRecord {
            account: AccountId::parse("acct").unwrap(),
            id: NamespaceId::random(),
            title: "my title ✓".into(),
            deleted: true,
            version: version(42),
        };
        let write = ReplicatedWrite::Namespace(record);
        let mut buf = Vec::new();
        encode_write(&write, &mut buf);
        assert_eq!(decode_write(&Bytes::from(buf)).unwrap(), write);
    }

    #[test]
    fn damaged_records_are_refused() {
        assert!(decode_entry(&Bytes::from_static(&[9])).is_err());
        assert!(decode_entry(&Bytes::new()).is_err());
        assert!(decode_record(&[1, 0, 0]).is_err());
        assert!(decode_write(&Bytes::from_static(&[3])).is_err());
        // A tombstone flag with a value behind it is damage, not a value.
        let mut buf = Vec::new();
        encode_entry(&Entry::tombstone(version(1)), &mut buf);
        buf.push(b'x');
        assert!(decode_entry(&Bytes::from(buf)).is_err());
    }
}
