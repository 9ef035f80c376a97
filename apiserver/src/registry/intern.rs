//! Interned names for kinds that appear at run time (custom resources).
//!
//! A [`super::ResourceInfo`] names its kind with `&'static str`s, which the
//! built-in table gets from constants. Custom resources get theirs here:
//! each distinct string (or list of strings) is allocated once and reused
//! for as long as the process lives, so recreating a CRD any number of
//! times does not grow memory; only new distinct names do.

use std::collections::HashSet;
use std::sync::{LazyLock, Mutex};

static STRINGS: LazyLock<Mutex<HashSet<&'static str>>> =
    LazyLock::new(|| Mutex::new(HashSet::new()));

static LISTS: LazyLock<Mutex<HashSet<&'static [&'static str]>>> =
    LazyLock::new(|| Mutex::new(HashSet::new()));

/// The one `'static` copy of `s`.
pub fn string(s: &str) -> &'static str {
    let mut set = STRINGS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(found) = set.get(s) {
        return found;
    }
    let leaked: &'static str = Box::leak(s.to_string().into_boxed_str());
    set.insert(leaked);
    leaked
}

/// The one `'static` copy of a list of strings.
pub fn list<S: AsRef<str>>(items: &[S]) -> &'static [&'static str] {
    let interned: Vec<&'static str> = items.iter().map(|s| string(s.as_ref())).collect();
    let mut set = LISTS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(found) = set.get(interned.as_slice()) {
        return found;
    }
    let leaked: &'static [&'static str] = Box::leak(interned.into_boxed_slice());
    set.insert(leaked);
    leaked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_strings_share_one_allocation() {
        let a = string(&String::from("crontabs"));
        let b = string("crontabs");
        assert!(std::ptr::eq(a, b));
        let l1 = list(&["ct".to_string()]);
        let l2 = list(&["ct"]);
        assert!(std::ptr::eq(l1, l2));
        assert_eq!(l1, &["ct"]);
    }
}
