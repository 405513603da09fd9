//! The server's layer of backup encryption: XChaCha20-Poly1305 under a versioned key from
//! `secrets.toml`, with the owner and the backup id bound as associated data, so a sealed row
//! copied to another user or another id fails to open. Two sealings exist (the `format`
//! column of `backups`):
//!
//! **Format 1** (before V10, read only): the whole backup is one AEAD message under a random
//! 192-bit nonce, associated data `"persona-backup/v1\0" owner "\0" id`. Opening any byte
//! means holding all of it.
//!
//! **Format 2** (every upload since V10): the plaintext is cut into chunks of [`CHUNK`]
//! bytes (the last one shorter; an empty backup is one empty chunk), each sealed on its own
//! in the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár, "Online
//! authenticated-encryption and its nonce-reuse misuse-resistance", 2015), as the `aead`
//! crate's former `stream` module did, written out here because aead 0.6 no longer has it:
//!
//! ```text
//! prefix      = 19 random bytes, one per sealing of a backup (the row's `nonce` column)
//! nonce(i, l) = prefix || u32_be(i) || l          (24 bytes; l = 1 for the last chunk, else 0)
//! ad(i, l)    = "persona-backup/v2\0" owner "\0" id "\0" || u64_be(i) || l
//! stored(i)   = XChaCha20-Poly1305(key, nonce(i, l), ad(i, l), chunk i) = ciphertext || tag
//! ```
//!
//! The counter in the nonce means a chunk opens only at its own index (no reordering, no
//! chunk from another position); the last flag means a backup cut short after a non-last
//! chunk, or extended past the last, fails; the prefix keeps chunks of two sealings apart,
//! and the associated data keeps a chunk from opening under another owner or backup id (the
//! index and flag are in it too, belt and braces). A reader that stops early has only
//! authenticated bytes: it learns of a truncation when the next chunk is missing or does not
//! open, never by accepting wrong ones.

use chacha20poly1305::{
    XChaCha20Poly1305, XNonce,
    aead::{AeadInOut, KeyInit},
};

use crate::secrets::Key256;

pub const NONCE_LEN: usize = 24;
pub const TAG_LEN: usize = 16;
/// Plaintext bytes per format-2 chunk (the last may be shorter). Part of the format: a new
/// size would need a new format number.
pub const CHUNK: usize = 1024 * 1024;
/// Bytes of the per-backup nonce prefix of format 2.
pub const PREFIX_LEN: usize = NONCE_LEN - 5;

fn cipher(key: &Key256) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(&(*key.as_bytes()).into())
}

fn random<const N: usize>() -> anyhow::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(bytes)
}

// ----- format 1: one message -----

fn whole_associated_data(user_id: &str, backup_id: &str) -> Vec<u8> {
    format!("persona-backup/v1\0{user_id}\0{backup_id}").into_bytes()
}

/// Format 1: encrypts `data` in place (it grows by the 16-byte tag) and returns the nonce.
/// Only tests write format 1 now; it stays to prove that old rows still open.
#[cfg(test)]
pub fn seal_whole(
    key: &Key256,
    user_id: &str,
    backup_id: &str,
    data: &mut Vec<u8>,
) -> anyhow::Result<[u8; NONCE_LEN]> {
    let nonce = random::<NONCE_LEN>()?;
    cipher(key)
        .encrypt_in_place(
            &XNonce::from(nonce),
            &whole_associated_data(user_id, backup_id),
            data,
        )
        .map_err(|_| anyhow::anyhow!("backup encryption failed"))?;
    Ok(nonce)
}

/// Format 1: decrypts `sealed` in place (it shrinks by the tag). Fails when the key, the
/// nonce, the owner, the id or a single byte differs from what was sealed.
pub fn open_whole(
    key: &Key256,
    user_id: &str,
    backup_id: &str,
    nonce: &[u8],
    sealed: &mut Vec<u8>,
) -> anyhow::Result<()> {
    let nonce: [u8; NONCE_LEN] = nonce
        .try_into()
        .map_err(|_| anyhow::anyhow!("backup nonce has the wrong length"))?;
    cipher(key)
        .decrypt_in_place(
            &XNonce::from(nonce),
            &whole_associated_data(user_id, backup_id),
            sealed,
        )
        .map_err(|_| anyhow::anyhow!("backup {backup_id} failed authentication"))
}

// ----- format 2: STREAM over chunks -----

/// How many chunks a backup of `size` plaintext bytes has in format 2 (at least one).
pub fn chunk_count(size: u64) -> u64 {
    size.div_ceil(CHUNK as u64).max(1)
}

/// The plaintext length of chunk `index` of a backup of `size` bytes (`None` past the end).
pub fn chunk_len(size: u64, index: u64) -> Option<usize> {
    let count = chunk_count(size);
    if index >= count {
        return None;
    }
    Some(if index + 1 < count {
        CHUNK
    } else {
        (size - index * CHUNK as u64) as usize
    })
}

/// One sealing of one backup in format 2: its key, nonce prefix, owner and id.
pub struct ChunkCipher {
    cipher: XChaCha20Poly1305,
    prefix: [u8; PREFIX_LEN],
    /// `"persona-backup/v2\0" owner "\0" id "\0"`; the index and flag follow per chunk.
    ad: Vec<u8>,
    backup_id: String,
}

impl ChunkCipher {
    /// A new sealing of backup `backup_id` of `user_id`, under a fresh random prefix.
    pub fn new(key: &Key256, user_id: &str, backup_id: &str) -> anyhow::Result<ChunkCipher> {
        Ok(ChunkCipher::with_prefix(
            key,
            user_id,
            backup_id,
            random::<PREFIX_LEN>()?,
        ))
    }

    /// The sealing stored with the prefix `prefix` (a row's `nonce`), to open its chunks.
    pub fn existing(
        key: &Key256,
        user_id: &str,
        backup_id: &str,
        prefix: &[u8],
    ) -> anyhow::Result<ChunkCipher> {
        let prefix = prefix
            .try_into()
            .map_err(|_| anyhow::anyhow!("backup nonce prefix has the wrong length"))?;
        Ok(ChunkCipher::with_prefix(key, user_id, backup_id, prefix))
    }

    fn with_prefix(
        key: &Key256,
        user_id: &str,
        backup_id: &str,
        prefix: [u8; PREFIX_LEN],
    ) -> ChunkCipher {
        ChunkCipher {
            cipher: cipher(key),
            prefix,
            ad: format!("persona-backup/v2\0{user_id}\0{backup_id}\0").into_bytes(),
            backup_id: backup_id.to_owned(),
        }
    }

    /// The nonce prefix, stored in the row's `nonce` column.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    fn nonce_and_ad(&self, index: u64, last: bool) -> anyhow::Result<(XNonce, Vec<u8>)> {
        let counter = u32::try_from(index)
            .map_err(|_| anyhow::anyhow!("backup chunk index {index} is out of range"))?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..PREFIX_LEN].copy_from_slice(&self.prefix);
        nonce[PREFIX_LEN..NONCE_LEN - 1].copy_from_slice(&counter.to_be_bytes());
        nonce[NONCE_LEN - 1] = u8::from(last);
        let mut ad = Vec::with_capacity(self.ad.len() + 9);
        ad.extend_from_slice(&self.ad);
        ad.extend_from_slice(&index.to_be_bytes());
        ad.push(u8::from(last));
        Ok((XNonce::from(nonce), ad))
    }

    /// Encrypts chunk `index` in place and returns its tag (stored after the ciphertext).
    pub fn seal_detached(
        &self,
        index: u64,
        last: bool,
        chunk: &mut [u8],
    ) -> anyhow::Result<[u8; TAG_LEN]> {
        let (nonce, ad) = self.nonce_and_ad(index, last)?;
        let tag = self
            .cipher
            .encrypt_inout_detached(&nonce, &ad, chunk.into())
            .map_err(|_| anyhow::anyhow!("backup encryption failed"))?;
        Ok(tag.into())
    }

    /// Encrypts chunk `index` in place; it grows by the tag.
    pub fn seal(&self, index: u64, last: bool, chunk: &mut Vec<u8>) -> anyhow::Result<()> {
        let tag = self.seal_detached(index, last, chunk)?;
        chunk.extend_from_slice(&tag);
        Ok(())
    }

    /// Decrypts stored chunk `index` in place; it shrinks by the tag. Fails when anything
    /// differs from its sealing: key, prefix, owner, id, index, being last, a single byte.
    pub fn open(&self, index: u64, last: bool, stored: &mut Vec<u8>) -> anyhow::Result<()> {
        let (nonce, ad) = self.nonce_and_ad(index, last)?;
        self.cipher
            .decrypt_in_place(&nonce, &ad, stored)
            .map_err(|_| {
                anyhow::anyhow!(
                    "chunk {index} of backup {} failed authentication",
                    self.backup_id
                )
            })
    }
}

/// A backup sealed in format 2 in place: `data` holds the ciphertext of every chunk back to
/// back (the plaintext's own buffer, so sealing allocates nothing of the backup's size),
/// `tags` one tag per chunk.
pub struct SealedChunks {
    pub prefix: [u8; PREFIX_LEN],
    pub data: Vec<u8>,
    pub tags: Vec<[u8; TAG_LEN]>,
}

impl SealedChunks {
    /// Seals `data` (the whole plaintext) chunk by chunk with `cipher`.
    pub fn seal(cipher: &ChunkCipher, mut data: Vec<u8>) -> anyhow::Result<SealedChunks> {
        let size = data.len() as u64;
        let count = chunk_count(size);
        let mut tags = Vec::with_capacity(count as usize);
        for index in 0..count {
            let start = index as usize * CHUNK;
            let end = (start + CHUNK).min(data.len());
            tags.push(cipher.seal_detached(index, index + 1 == count, &mut data[start..end])?);
        }
        Ok(SealedChunks {
            prefix: cipher.prefix,
            data,
            tags,
        })
    }

    /// The rows of `backup_chunks` in order (ciphertext then tag), one buffer at a time.
    pub fn stored(&self) -> impl Iterator<Item = Vec<u8>> + '_ {
        self.tags.iter().enumerate().map(|(index, tag)| {
            let start = index * CHUNK;
            let end = (start + CHUNK).min(self.data.len());
            let mut row = Vec::with_capacity(end - start + TAG_LEN);
            row.extend_from_slice(&self.data[start..end]);
            row.extend_from_slice(tag);
            row
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_data_opens_only_for_its_owner_id_and_key() {
        let key = Key256::generate().unwrap();
        let mut data = b"the little brain".to_vec();
        let nonce = seal_whole(&key, "u1", "b1", &mut data).unwrap();
        assert_eq!(data.len(), 16 + TAG_LEN);
        assert!(!data.windows(6).any(|w| w == b"little"));

        let mut copy = data.clone();
        open_whole(&key, "u1", "b1", &nonce, &mut copy).unwrap();
        assert_eq!(copy, b"the little brain");

        for (user, id) in [("u2", "b1"), ("u1", "b2")] {
            assert!(open_whole(&key, user, id, &nonce, &mut data.clone()).is_err());
        }
        let other = Key256::generate().unwrap();
        assert!(open_whole(&other, "u1", "b1", &nonce, &mut data.clone()).is_err());
        let mut tampered = data.clone();
        tampered[0] ^= 1;
        assert!(open_whole(&key, "u1", "b1", &nonce, &mut tampered).is_err());
    }

    fn seal_new(key: &Key256, data: Vec<u8>) -> SealedChunks {
        SealedChunks::seal(&ChunkCipher::new(key, "u1", "b1").unwrap(), data).unwrap()
    }

    fn plaintext(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i % 251) as u8 ^ (i / CHUNK) as u8)
            .collect()
    }

    /// Opens `rows` as the chunks of a backup of `size` bytes, as a download does.
    fn open_rows(
        key: &Key256,
        user: &str,
        id: &str,
        prefix: &[u8],
        size: u64,
        rows: &[Vec<u8>],
    ) -> anyhow::Result<Vec<u8>> {
        let cipher = ChunkCipher::existing(key, user, id, prefix)?;
        let count = chunk_count(size);
        let mut out = Vec::new();
        for index in 0..count {
            let mut row = rows
                .get(index as usize)
                .ok_or_else(|| anyhow::anyhow!("chunk {index} is missing"))?
                .clone();
            cipher.open(index, index + 1 == count, &mut row)?;
            anyhow::ensure!(row.len() == chunk_len(size, index).unwrap(), "wrong length");
            out.extend_from_slice(&row);
        }
        Ok(out)
    }

    #[test]
    fn chunk_geometry() {
        assert_eq!(chunk_count(0), 1);
        assert_eq!(chunk_len(0, 0), Some(0));
        assert_eq!(chunk_len(0, 1), None);
        assert_eq!(chunk_count(1), 1);
        assert_eq!(chunk_count(CHUNK as u64), 1);
        assert_eq!(chunk_len(CHUNK as u64, 0), Some(CHUNK));
        assert_eq!(chunk_count(CHUNK as u64 + 1), 2);
        assert_eq!(chunk_len(CHUNK as u64 + 1, 0), Some(CHUNK));
        assert_eq!(chunk_len(CHUNK as u64 + 1, 1), Some(1));
        assert_eq!(chunk_len(CHUNK as u64 + 1, 2), None);
    }

    #[test]
    fn chunked_sealing_round_trips_at_every_size_edge() {
        let key = Key256::generate().unwrap();
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 12_345] {
            let data = plaintext(len);
            let sealed = seal_new(&key, data.clone());
            let rows: Vec<Vec<u8>> = sealed.stored().collect();
            assert_eq!(rows.len() as u64, chunk_count(len as u64), "{len}");
            assert_eq!(
                rows.iter().map(Vec::len).sum::<usize>(),
                len + rows.len() * TAG_LEN
            );
            if len >= 64 {
                assert!(!rows[0].windows(32).any(|w| w == &data[..32]), "encrypted");
            }
            let opened = open_rows(&key, "u1", "b1", &sealed.prefix, len as u64, &rows).unwrap();
            assert!(opened == data, "{len} bytes round trip");
        }
    }

    #[test]
    fn a_chunk_opens_only_at_its_place_in_its_own_backup() {
        let key = Key256::generate().unwrap();
        let size = 3 * CHUNK as u64 + 10;
        let data = plaintext(size as usize);
        let sealed = seal_new(&key, data);
        let prefix = sealed.prefix;
        let rows: Vec<Vec<u8>> = sealed.stored().collect();
        let open = |rows: &[Vec<u8>], size: u64| open_rows(&key, "u1", "b1", &prefix, size, rows);
        assert!(open(&rows, size).is_ok());

        // One flipped bit, anywhere, in any chunk (the tag included).
        for (index, at) in [(0, 0), (1, CHUNK / 2), (3, 9), (3, 10 + TAG_LEN - 1)] {
            let mut tampered = rows.clone();
            tampered[index][at] ^= 1;
            assert!(open(&tampered, size).is_err(), "chunk {index} byte {at}");
        }
        // Two chunks swapped.
        let mut swapped = rows.clone();
        swapped.swap(1, 2);
        assert!(open(&swapped, size).is_err());
        // The same chunk twice.
        let mut repeated = rows.clone();
        repeated[2] = rows[1].clone();
        assert!(open(&repeated, size).is_err());
        // Truncated: the last chunk dropped, and the size claimed to match what is left.
        let cut = &rows[..3];
        assert!(open(cut, size).is_err());
        assert!(
            open(cut, 3 * CHUNK as u64).is_err(),
            "chunk 2 was not the last"
        );
        // Extended: a size claiming a chunk more than was sealed.
        assert!(open(&rows, size + CHUNK as u64).is_err());
        // The whole backup under another owner, id, prefix or key.
        assert!(open_rows(&key, "u2", "b1", &prefix, size, &rows).is_err());
        assert!(open_rows(&key, "u1", "b2", &prefix, size, &rows).is_err());
        let mut other_prefix = prefix;
        other_prefix[0] ^= 1;
        assert!(open_rows(&key, "u1", "b1", &other_prefix, size, &rows).is_err());
        let other = Key256::generate().unwrap();
        assert!(open_rows(&other, "u1", "b1", &prefix, size, &rows).is_err());
        assert!(ChunkCipher::existing(&key, "u1", "b1", &prefix[1..]).is_err());
    }

    #[test]
    fn a_chunk_from_another_sealing_does_not_open() {
        let key = Key256::generate().unwrap();
        let data = plaintext(2 * CHUNK + 5);
        let first = seal_new(&key, data.clone());
        let second = seal_new(&key, data);
        assert_ne!(first.prefix, second.prefix, "a fresh prefix per sealing");
        let mut mixed: Vec<Vec<u8>> = first.stored().collect();
        mixed[1] = second.stored().nth(1).unwrap();
        assert!(
            open_rows(
                &key,
                "u1",
                "b1",
                &first.prefix,
                2 * CHUNK as u64 + 5,
                &mixed
            )
            .is_err()
        );
    }

    #[test]
    fn the_construction_is_pinned() {
        // The one (last) chunk of a 3-byte backup, opened with the plain AEAD from the nonce
        // and associated data as documented above: the two must agree.
        let key = Key256::generate().unwrap();
        let sealed = seal_new(&key, b"abc".to_vec());
        let row = sealed.stored().next().unwrap();
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..PREFIX_LEN].copy_from_slice(&sealed.prefix);
        nonce[NONCE_LEN - 1] = 1;
        let mut ad = b"persona-backup/v2\0u1\0b1\0".to_vec();
        ad.extend_from_slice(&0u64.to_be_bytes());
        ad.push(1);
        let mut buffer = row.clone();
        cipher(&key)
            .decrypt_in_place(&XNonce::from(nonce), &ad, &mut buffer)
            .unwrap();
        assert_eq!(buffer, b"abc");
    }
}
