//! What the collector does with one dependent, given the state of each of
//! its owners, as upstream's `attemptToDeleteItem`: an object with a live
//! owner stays (losing references to gone or foreground-deleting owners);
//! one whose owners are all gone or being deleted goes too.

/// The state of one owner reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerState {
    /// The owner exists and is not deleting its dependents first.
    Solid,
    /// The owner is being deleted in the foreground (waiting for its
    /// dependents).
    Waiting,
    /// No object with that uid exists.
    Dangling,
}

/// How a dependent is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// Its own dependents first (its owner waits for it).
    Foreground,
    /// It goes now; its dependents after.
    Background,
}

/// What to do with a dependent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing.
    Keep,
    /// Drop the references to these owner uids (gone or deleting owners)
    /// while another owner keeps the object.
    DropReferences(Vec<String>),
    /// Delete the object.
    Delete(Propagation),
}

/// Decides for a dependent with `owners` (uid, state); `has_dependents`
/// says whether objects depend on it in turn, `deleting` whether it is
/// already being deleted.
pub fn decide(owners: &[(String, OwnerState)], has_dependents: bool, deleting: bool) -> Action {
    if owners.is_empty() {
        return Action::Keep;
    }
    let of = |state: OwnerState| -> Vec<String> {
        owners
            .iter()
            .filter(|(_, s)| *s == state)
            .map(|(u, _)| u.clone())
            .collect()
    };
    let (solid, waiting, dangling) = (
        of(OwnerState::Solid),
        of(OwnerState::Waiting),
        of(OwnerState::Dangling),
    );
    if !solid.is_empty() {
        let drop: Vec<String> = dangling.into_iter().chain(waiting).collect();
        return if drop.is_empty() {
            Action::Keep
        } else {
            Action::DropReferences(drop)
        };
    }
    if deleting {
        return Action::Keep;
    }
    if !waiting.is_empty() && has_dependents {
        Action::Delete(Propagation::Foreground)
    } else {
        Action::Delete(Propagation::Background)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use OwnerState::*;

    fn owners(states: &[OwnerState]) -> Vec<(String, OwnerState)> {
        states
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("o{i}"), *s))
            .collect()
    }

    #[test]
    fn a_live_owner_keeps_the_object_and_sheds_the_rest() {
        assert_eq!(decide(&owners(&[Solid]), false, false), Action::Keep);
        assert_eq!(
            decide(&owners(&[Solid, Dangling, Waiting]), false, false),
            Action::DropReferences(vec!["o1".into(), "o2".into()])
        );
    }

    #[test]
    fn without_a_live_owner_the_object_goes() {
        assert_eq!(
            decide(&owners(&[Dangling]), true, false),
            Action::Delete(Propagation::Background)
        );
        assert_eq!(
            decide(&owners(&[Waiting]), true, false),
            Action::Delete(Propagation::Foreground),
            "a foreground owner's dependents delete their own dependents first"
        );
        assert_eq!(
            decide(&owners(&[Waiting]), false, false),
            Action::Delete(Propagation::Background)
        );
        assert_eq!(decide(&owners(&[Dangling]), false, true), Action::Keep);
        assert_eq!(decide(&[], false, false), Action::Keep);
    }
}
