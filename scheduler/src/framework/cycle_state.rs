//! Per-cycle scratch space: what a plugin's PreFilter/PreScore computes once
//! for a pod and its Filter/Score reads for every node. Cloned for each
//! node preemption evaluates, so every entry must be cloneable.

use std::any::Any;
use std::borrow::Cow;

/// A value a plugin keeps in the cycle state.
pub trait StateData: Any + Send + Sync {
    /// A boxed copy, so the whole state can be cloned.
    fn clone_box(&self) -> Box<dyn StateData>;
    /// For downcasting on read.
    fn as_any(&self) -> &dyn Any;
    /// For downcasting on update.
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: Any + Clone + Send + Sync> StateData for T {
    fn clone_box(&self) -> Box<dyn StateData> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// Plugin data for one scheduling cycle, keyed by a name the plugin picks
/// (usually its own name plus the extension point). A handful of entries
/// read for every node: a short list beats hashing the key each time.
#[derive(Default)]
pub struct CycleState {
    data: Vec<(&'static str, Box<dyn StateData>)>,
}

impl Clone for CycleState {
    fn clone(&self) -> Self {
        CycleState {
            data: self
                .data
                .iter()
                .map(|(k, v)| (*k, v.as_ref().clone_box()))
                .collect(),
        }
    }
}

impl CycleState {
    /// Stores `value` under `key`, replacing what was there.
    pub fn write<T: Any + Clone + Send + Sync>(&mut self, key: &'static str, value: T) {
        match self.position(key) {
            Some(i) => self.data[i].1 = Box::new(value),
            None => self.data.push((key, Box::new(value))),
        }
    }

    /// The value under `key`, if it is a `T`.
    pub fn read<T: Any>(&self, key: &'static str) -> Option<&T> {
        let i = self.position(key)?;
        self.data[i].1.as_ref().as_any().downcast_ref()
    }

    /// The value under `key`, or `compute`d now when PreScore did not store
    /// it (upstream's Score falls back the same way).
    pub fn read_or<T: Any + Clone>(
        &self,
        key: &'static str,
        compute: impl FnOnce() -> T,
    ) -> Cow<'_, T> {
        match self.read::<T>(key) {
            Some(v) => Cow::Borrowed(v),
            None => Cow::Owned(compute()),
        }
    }

    /// The value under `key` for update, if it is a `T`.
    pub fn read_mut<T: Any>(&mut self, key: &'static str) -> Option<&mut T> {
        let i = self.position(key)?;
        self.data[i].1.as_mut().as_any_mut().downcast_mut()
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.data
            .iter()
            .position(|(k, _)| std::ptr::eq(*k, key) || *k == key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_are_independent() {
        let mut s = CycleState::default();
        s.write("k", vec![1]);
        let mut c = s.clone();
        if let Some(v) = c.read_mut::<Vec<i32>>("k") {
            v.push(2);
        }
        assert_eq!(s.read::<Vec<i32>>("k"), Some(&vec![1]));
        assert_eq!(c.read::<Vec<i32>>("k"), Some(&vec![1, 2]));
        assert!(s.read::<String>("k").is_none());
    }
}
