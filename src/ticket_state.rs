//! The ticket lifecycle, decided in one place: typed states and actions, and [`after`], the only function that
//! says what an action does to a state. Pure (no store, no clock): the SQLite and PostgreSQL backends ask it before
//! they save, and `central::ticket_service` is the one way in for the dispatcher, the API and the SLA clock.
//!
//! ```text
//! raised ──(assigned)──▶ dispatched ──acknowledge──▶ acknowledged ──on_site──▶ on_site
//!    └──────────────────────┴───────────on_site────────────┘                    │
//!  every open state ──resolve / auto-resolve──▶ resolved ──reopen (within the window)──▶ raised | dispatched
//!  escalate: any open state, unchanged (the tier moves); reassign: raised → dispatched, others unchanged
//! ```

use serde::{Deserialize, Serialize};

/// Where a ticket is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Raised, nobody assigned (nobody on duty, or an engineers' ticket).
    Raised,
    /// Assigned to a worker.
    Dispatched,
    /// Someone took it.
    Acknowledged,
    /// A worker is there.
    OnSite,
    /// Done (by hand with a note, or automatically when the value stayed under the clear level).
    Resolved,
}

/// What someone (or the system) does to a ticket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// I have it.
    Acknowledge,
    /// I am there.
    OnSite,
    /// Done, with a note (a person).
    Resolve,
    /// The rule's value stayed under its clear level (the system).
    AutoResolve,
    /// One tier up (a whistle, or the SLA clock).
    Escalate,
    /// To another worker (operators).
    Reassign,
    /// Raised again within the reopen window.
    Reopen,
}

/// An action the state does not allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the ticket is {}: it cannot be {}", state.as_str(), action.done())]
pub struct Refused {
    /// The state it is in.
    pub state: State,
    /// What was asked.
    pub action: Action,
}

impl State {
    /// Lower-case name (database, API).
    pub fn as_str(self) -> &'static str {
        match self {
            State::Raised => "raised",
            State::Dispatched => "dispatched",
            State::Acknowledged => "acknowledged",
            State::OnSite => "on_site",
            State::Resolved => "resolved",
        }
    }

    /// Parses [`State::as_str`].
    pub fn parse(s: &str) -> Option<State> {
        [State::Raised, State::Dispatched, State::Acknowledged, State::OnSite, State::Resolved]
            .into_iter()
            .find(|x| x.as_str() == s)
    }

    /// Not resolved.
    pub fn is_open(self) -> bool {
        self != State::Resolved
    }

    /// Not yet taken by anyone (the acknowledge deadline runs).
    pub fn unacknowledged(self) -> bool {
        matches!(self, State::Raised | State::Dispatched)
    }

    /// Where a new (or reopened) ticket starts.
    pub fn initial(assigned: bool) -> State {
        if assigned {
            State::Dispatched
        } else {
            State::Raised
        }
    }
}

impl Action {
    /// The action as the API names it (`POST /api/v1/tickets/{id}/{action}`), where it is one.
    pub fn parse(api: &str) -> Option<Action> {
        match api {
            "acknowledge" => Some(Action::Acknowledge),
            "on_site" => Some(Action::OnSite),
            "resolve" => Some(Action::Resolve),
            "escalate" => Some(Action::Escalate),
            "reassign" => Some(Action::Reassign),
            _ => None,
        }
    }

    /// The event it writes in the ticket's trail (and the notification's event).
    pub fn done(self) -> &'static str {
        match self {
            Action::Acknowledge => "acknowledged",
            Action::OnSite => "on_site",
            Action::Resolve | Action::AutoResolve => "resolved",
            Action::Escalate => "escalated",
            Action::Reassign => "reassigned",
            Action::Reopen => "reopened",
        }
    }
}

/// The state `action` leads to from `from` (`assigned`: the ticket has a worker), or why not.
pub fn after(from: State, action: Action, assigned: bool) -> Result<State, Refused> {
    use State::*;
    let refused = Err(Refused { state: from, action });
    match (action, from) {
        (Action::Reopen, Resolved) => Ok(State::initial(assigned)),
        (Action::Reopen, _) | (_, Resolved) => refused,
        (Action::Acknowledge, Raised | Dispatched) => Ok(Acknowledged),
        (Action::Acknowledge, _) => refused,
        (Action::OnSite, Raised | Dispatched | Acknowledged) => Ok(OnSite),
        (Action::OnSite, _) => refused,
        (Action::Resolve | Action::AutoResolve, _) => Ok(Resolved),
        (Action::Escalate, s) => Ok(s),
        (Action::Reassign, Raised) => Ok(Dispatched),
        (Action::Reassign, s) => Ok(s),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const STATES: [State; 5] = [State::Raised, State::Dispatched, State::Acknowledged, State::OnSite, State::Resolved];
    const ACTIONS: [Action; 7] = [
        Action::Acknowledge,
        Action::OnSite,
        Action::Resolve,
        Action::AutoResolve,
        Action::Escalate,
        Action::Reassign,
        Action::Reopen,
    ];

    #[test]
    fn names_round_trip_and_the_table_holds() {
        for s in STATES {
            assert_eq!(State::parse(s.as_str()), Some(s));
        }
        assert_eq!(after(State::Dispatched, Action::Acknowledge, true), Ok(State::Acknowledged));
        assert_eq!(
            after(State::OnSite, Action::Acknowledge, true).unwrap_err().to_string(),
            "the ticket is on_site: it cannot be acknowledged"
        );
        assert_eq!(after(State::Resolved, Action::Reopen, false), Ok(State::Raised));
        assert_eq!(after(State::Resolved, Action::Reopen, true), Ok(State::Dispatched));
        assert!(after(State::Resolved, Action::Escalate, true).is_err());
    }

    proptest! {
        /// Over any sequence of actions: a resolved ticket changes only by reopening; progress never goes back
        /// (acknowledged or on site never return to raised/dispatched except through a reopen); every open state
        /// can be resolved in one step; escalating never changes the state.
        #[test]
        fn any_sequence_keeps_the_lifecycle(assigned: bool, actions in prop::collection::vec(0usize..7, 0..60)) {
            let mut s = State::initial(assigned);
            for a in actions.into_iter().map(|i| ACTIONS[i]) {
                let before = s;
                match after(s, a, assigned) {
                    Ok(next) => {
                        if before == State::Resolved {
                            prop_assert_eq!(a, Action::Reopen);
                        }
                        if matches!(before, State::Acknowledged | State::OnSite) && a != Action::Reopen {
                            prop_assert!(!next.unacknowledged(), "{before:?} --{a:?}--> {next:?}");
                        }
                        if a == Action::Escalate {
                            prop_assert_eq!(next, before);
                        }
                        s = next;
                    }
                    Err(r) => {
                        prop_assert_eq!(r, Refused { state: before, action: a });
                        prop_assert!(before == State::Resolved || matches!(a, Action::Acknowledge | Action::OnSite | Action::Reopen));
                    }
                }
                if s.is_open() {
                    prop_assert_eq!(after(s, Action::Resolve, assigned), Ok(State::Resolved));
                }
            }
        }
    }
}
