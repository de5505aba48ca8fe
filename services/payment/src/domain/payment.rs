//! A payment and its life: created WAITING, then exactly one of PAYED (its owner paid in time),
//! CANCEL (its owner cancelled) or TIMEOUT (its window passed). The three are final.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// Where a payment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PayState {
    Waiting,
    Cancel,
    Payed,
    Timeout,
}

impl PayState {
    /// The state machine's edges: WAITING may become PAYED, CANCEL or TIMEOUT, once; the other
    /// three are final. The store's SQL guards (`… AND state = 'WAITING'`) are these edges.
    pub fn may_become(self, next: PayState) -> bool {
        self == Self::Waiting && next != Self::Waiting
    }

    /// The stored and displayed spelling (the REST API's `payState`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "WAITING",
            Self::Cancel => "CANCEL",
            Self::Payed => "PAYED",
            Self::Timeout => "TIMEOUT",
        }
    }
}

impl fmt::Display for PayState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown payment state {0:?}")]
pub struct UnknownPayState(pub String);

impl FromStr for PayState {
    type Err = UnknownPayState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "WAITING" => Ok(Self::Waiting),
            "CANCEL" => Ok(Self::Cancel),
            "PAYED" => Ok(Self::Payed),
            "TIMEOUT" => Ok(Self::Timeout),
            other => Err(UnknownPayState(other.to_owned())),
        }
    }
}

/// One product line of a payment, priced when it was settled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentItem {
    pub product_id: i64,
    pub amount: i64,
    pub price_cents: i64,
}

/// A payment as stored. Times are Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub id: i64,
    /// The public handle (a UUID).
    pub pay_id: String,
    pub account_id: i64,
    /// Ordered by product id.
    pub items: Vec<PaymentItem>,
    /// Σ price × amount + shipping fee.
    pub total_cents: i64,
    pub state: PayState,
    pub created_ms: i64,
    /// When the window closes: a WAITING payment can be paid only before this instant.
    pub expires_ms: i64,
}

impl Payment {
    /// The window length the client counts down from (`expires` in the REST API).
    pub fn window_ms(&self) -> i64 {
        self.expires_ms - self.created_ms
    }

    /// What the front-end shows as a QR code.
    pub fn payment_link(&self) -> String {
        format!(
            "/pay/modify/{}?state=PAYED&accountId={}",
            self.pay_id, self.account_id
        )
    }

    pub fn is_owned_by(&self, account_id: i64) -> bool {
        self.account_id == account_id
    }

    /// What asking this payment to become `wanted` (PAYED or CANCEL, its owner's changes) at
    /// `now_ms` comes to. The store's guarded UPDATE (`state = 'WAITING' AND expires_ms > now`)
    /// is [`Move::Allowed`]; when it changes no row, this says why.
    pub fn attempt(&self, wanted: PayState, now_ms: i64) -> Move {
        if !self.state.may_become(wanted) {
            Move::Final(self.state)
        } else if self.is_overdue(now_ms) {
            Move::WindowClosed
        } else {
            Move::Allowed
        }
    }

    /// WAITING with its window closed: it may only become TIMEOUT now.
    pub fn is_overdue(&self, now_ms: i64) -> bool {
        self.state == PayState::Waiting && self.expires_ms <= now_ms
    }
}

/// The answer of [`Payment::attempt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    /// The edge exists: the state changes.
    Allowed,
    /// Still WAITING, but its window has closed: it becomes TIMEOUT instead.
    WindowClosed,
    /// Already in this final state: nothing changes.
    Final(PayState),
}

/// One account's money, in cents. Never negative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wallet {
    pub id: i64,
    pub account_id: i64,
    pub balance_cents: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payment(state: PayState) -> Payment {
        Payment {
            id: 7,
            pay_id: "5f0c2b1e-8d5a-4c2e-9f3a-1b2c3d4e5f60".into(),
            account_id: 3,
            items: vec![PaymentItem {
                product_id: 1,
                amount: 2,
                price_cents: 100,
            }],
            total_cents: 1_400,
            state,
            created_ms: 10_000,
            expires_ms: 130_000,
        }
    }

    #[test]
    fn states_round_trip_through_their_stored_names() {
        for state in [
            PayState::Waiting,
            PayState::Cancel,
            PayState::Payed,
            PayState::Timeout,
        ] {
            assert_eq!(state.as_str().parse::<PayState>(), Ok(state));
        }
        assert!("PAID".parse::<PayState>().is_err());
    }

    #[test]
    fn link_window_and_overdue_follow_the_rest_contract() {
        let waiting = payment(PayState::Waiting);
        assert_eq!(
            waiting.payment_link(),
            "/pay/modify/5f0c2b1e-8d5a-4c2e-9f3a-1b2c3d4e5f60?state=PAYED&accountId=3"
        );
        assert_eq!(waiting.window_ms(), 120_000);
        assert!(!waiting.is_overdue(129_999));
        assert!(waiting.is_overdue(130_000));
        assert!(!payment(PayState::Payed).is_overdue(200_000));
        assert!(waiting.is_owned_by(3) && !waiting.is_owned_by(4));
    }

    #[test]
    fn the_state_machine_has_one_edge_out_of_waiting_and_none_out_of_final_states() {
        use PayState::*;
        for from in [Waiting, Cancel, Payed, Timeout] {
            for to in [Waiting, Cancel, Payed, Timeout] {
                assert_eq!(
                    from.may_become(to),
                    from == Waiting && to != Waiting,
                    "{from} -> {to}"
                );
            }
        }
        let waiting = payment(Waiting);
        assert_eq!(waiting.attempt(Payed, 129_999), Move::Allowed);
        assert_eq!(waiting.attempt(Cancel, 130_000), Move::WindowClosed);
        assert_eq!(payment(Payed).attempt(Cancel, 0), Move::Final(Payed));
        assert_eq!(payment(Timeout).attempt(Payed, 0), Move::Final(Timeout));
    }
}
