//! FNV-32 hashes rendered with upstream's `rand.SafeEncodeString`: how
//! upstream names objects after their content (`pod-template-hash`,
//! `controller-revision-hash`), in one place so every controller renders
//! the same content to the same name.

/// The FNV-32 offset basis: where every hash starts.
pub const FNV32_OFFSET: u32 = 0x811c_9dc5;

const FNV32_PRIME: u32 = 0x0100_0193;

/// Upstream's `rand.SafeEncodeString` alphabet: no vowels, no confusables.
pub(crate) const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// FNV-1a (Go's `fnv.New32a`) of `bytes`, continuing from `hash`
/// (start with [`FNV32_OFFSET`]); the Deployment controller's hash.
pub fn fnv32a(bytes: &[u8], mut hash: u32) -> u32 {
    for b in bytes {
        hash ^= u32::from(*b);
        hash = hash.wrapping_mul(FNV32_PRIME);
    }
    hash
}

/// FNV-1 (Go's `fnv.New32`, multiply before xor) of `bytes`, continuing
/// from `hash`; upstream's `HashControllerRevision` uses this one.
pub fn fnv32(bytes: &[u8], mut hash: u32) -> u32 {
    for b in bytes {
        hash = hash.wrapping_mul(FNV32_PRIME);
        hash ^= u32::from(*b);
    }
    hash
}

/// `rand.SafeEncodeString(fmt.Sprint(hash))`: the decimal digits of
/// `hash` mapped into the safe alphabet, so names never spell words.
pub fn safe_encode(hash: u32) -> String {
    hash.to_string()
        .bytes()
        .map(|b| ALPHABET[usize::from(b) % ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers() {
        assert_eq!(fnv32(b"", FNV32_OFFSET), 0x811c_9dc5);
        assert_eq!(fnv32(b"a", FNV32_OFFSET), 0x050c_5d7e);
        assert_eq!(fnv32a(b"a", FNV32_OFFSET), 0xe40c_292c);
        assert_eq!(fnv32a(b"foobar", FNV32_OFFSET), 0xbf9c_f968);
        // '0' is 48: 48 % 27 = 21 → '4'.
        assert_eq!(safe_encode(0), "4");
        assert!(safe_encode(u32::MAX).bytes().all(|c| ALPHABET.contains(&c)));
    }
}
