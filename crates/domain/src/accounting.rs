//! Accounting writes off the returned unit: an asset disposal charged to the month of the
//! request, at the unit's manufacturing cost.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::clock::YearMonth;
use crate::ids::{EntryId, ReturnId};
use crate::money::{Currency, Money};
use crate::request::RefundRequest;
use crate::team::{Outcome, Team};

/// The currencies the ledger books in.
pub const BOOKED_CURRENCIES: &[Currency] = &[Currency::Eur];

/// The Accounting team's rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Accounting;

/// General-ledger accounts this rule posts to; serialized as the account number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum Account {
    /// 6950: loss on disposal of assets.
    #[serde(rename = "6950")]
    AssetDisposalExpense,
}

impl Account {
    pub const fn code(self) -> &'static str {
        match self {
            Account::AssetDisposalExpense => "6950",
        }
    }
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Disposals booked in one month.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonthLedger {
    pub disposals: u64,
    /// Running total per currency, in minor units.
    pub totals: BTreeMap<Currency, i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "type")]
pub enum AccountingEvent {
    AssetDisposalCharged {
        return_id: ReturnId,
        month: YearMonth,
        amount: Money,
        account: Account,
        entry_id: EntryId,
    },
    DisposalRejected {
        return_id: ReturnId,
        month: YearMonth,
        reason: AccountingRejection,
    },
}

/// Why Accounting refuses to book the disposal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "code")]
pub enum AccountingRejection {
    /// The ledger does not book in this currency (see [`BOOKED_CURRENCIES`]).
    CurrencyNotBooked { currency: Currency },
}

impl AccountingRejection {
    pub const fn name(&self) -> &'static str {
        match self {
            Self::CurrencyNotBooked { .. } => "CurrencyNotBooked",
        }
    }
}

impl AccountingEvent {
    pub const fn return_id(&self) -> ReturnId {
        match self {
            Self::AssetDisposalCharged { return_id, .. }
            | Self::DisposalRejected { return_id, .. } => *return_id,
        }
    }
}

impl Team for Accounting {
    const NAME: &'static str = "accounting";
    type Key = YearMonth;
    type State = MonthLedger;
    type Event = AccountingEvent;

    fn key(req: &RefundRequest) -> YearMonth {
        req.requested_at.month()
    }

    fn initial(_: &YearMonth) -> MonthLedger {
        MonthLedger::default()
    }

    fn decide(_: &MonthLedger, req: &RefundRequest) -> AccountingEvent {
        let month = req.requested_at.month();
        let currency = req.unit_cost.currency();
        if !BOOKED_CURRENCIES.contains(&currency) {
            return AccountingEvent::DisposalRejected {
                return_id: req.return_id,
                month,
                reason: AccountingRejection::CurrencyNotBooked { currency },
            };
        }
        AccountingEvent::AssetDisposalCharged {
            return_id: req.return_id,
            month,
            amount: req.unit_cost,
            account: Account::AssetDisposalExpense,
            entry_id: EntryId::for_return(&req.return_id),
        }
    }

    fn evolve(state: &mut MonthLedger, event: &AccountingEvent) {
        match event {
            AccountingEvent::AssetDisposalCharged { amount, .. } => {
                state.disposals = state.disposals.saturating_add(1);
                let total = state.totals.entry(amount.currency()).or_default();
                *total = total.saturating_add(amount.minor());
            }
            AccountingEvent::DisposalRejected { .. } => {}
        }
    }

    fn event_key(event: &AccountingEvent) -> YearMonth {
        match event {
            AccountingEvent::AssetDisposalCharged { month, .. }
            | AccountingEvent::DisposalRejected { month, .. } => *month,
        }
    }

    fn outcome(event: &AccountingEvent) -> Outcome {
        match event {
            AccountingEvent::AssetDisposalCharged { .. } => {
                Outcome::accepted("asset_disposal_charged")
            }
            AccountingEvent::DisposalRejected { reason, .. } => {
                Outcome::rejected("disposal_rejected", reason.name())
            }
        }
    }

    fn event_type(event: &AccountingEvent) -> &'static str {
        match event {
            AccountingEvent::AssetDisposalCharged { .. } => "AssetDisposalCharged",
            AccountingEvent::DisposalRejected { .. } => "DisposalRejected",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::testkit::a_request;

    struct Case {
        name: &'static str,
        given: MonthLedger,
        when: RefundRequest,
        then: AccountingEvent,
    }

    fn march() -> YearMonth {
        YearMonth::new(2026, 3).unwrap()
    }

    fn ledger(disposals: u64, totals: &[(Currency, i64)]) -> MonthLedger {
        MonthLedger {
            disposals,
            totals: totals.iter().copied().collect(),
        }
    }

    fn cases() -> Vec<Case> {
        let eur = a_request()
            .unit_cost(Money::eur(4_100))
            .at("2026-03-31T23:59:59.999Z")
            .build();
        let gbp = a_request()
            .unit_cost(Money::new(3_500, Currency::Gbp))
            .at("2026-03-02T08:00:00Z")
            .build();
        let usd = a_request()
            .unit_cost(Money::new(3_500, Currency::Usd))
            .at("2026-03-02T08:00:00Z")
            .build();
        let charged = |r: &RefundRequest| AccountingEvent::AssetDisposalCharged {
            return_id: r.return_id,
            month: march(),
            amount: r.unit_cost,
            account: Account::AssetDisposalExpense,
            entry_id: EntryId::for_return(&r.return_id),
        };
        let rejected = |r: &RefundRequest, currency| AccountingEvent::DisposalRejected {
            return_id: r.return_id,
            month: march(),
            reason: AccountingRejection::CurrencyNotBooked { currency },
        };
        vec![
            Case {
                name: "EUR cost in an empty month -> charged to 6950",
                given: MonthLedger::default(),
                then: charged(&eur),
                when: eur.clone(),
            },
            Case {
                name: "EUR cost in a busy month -> charged (the ledger never blocks)",
                given: ledger(1_000, &[(Currency::Eur, 4_100_000)]),
                then: charged(&eur),
                when: eur,
            },
            Case {
                name: "GBP cost -> CurrencyNotBooked",
                given: MonthLedger::default(),
                then: rejected(&gbp, Currency::Gbp),
                when: gbp,
            },
            Case {
                name: "USD cost -> CurrencyNotBooked",
                given: MonthLedger::default(),
                then: rejected(&usd, Currency::Usd),
                when: usd,
            },
        ]
    }

    #[test]
    fn decide_table() {
        for case in cases() {
            assert_eq!(Accounting::key(&case.when), march(), "{}", case.name);
            assert_eq!(
                Accounting::decide(&case.given, &case.when),
                case.then,
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn table_covers_every_outcome() {
        let seen: HashSet<_> = cases()
            .iter()
            .map(|c| Accounting::outcome(&c.then))
            .collect();
        let all = HashSet::from([
            Outcome::accepted("asset_disposal_charged"),
            Outcome::rejected("disposal_rejected", "CurrencyNotBooked"),
        ]);
        assert_eq!(seen, all);
    }

    #[test]
    fn evolve_table() {
        let cases = cases();
        let evolve_cases = [
            (
                "first disposal of the month",
                MonthLedger::default(),
                &cases[0].then,
                ledger(1, &[(Currency::Eur, 4_100)]),
            ),
            (
                "adds to the running total",
                ledger(2, &[(Currency::Eur, 100)]),
                &cases[0].then,
                ledger(3, &[(Currency::Eur, 4_200)]),
            ),
            (
                "rejection books nothing",
                ledger(2, &[(Currency::Eur, 100)]),
                &cases[2].then,
                ledger(2, &[(Currency::Eur, 100)]),
            ),
        ];
        for (name, mut given, event, then) in evolve_cases {
            Accounting::evolve(&mut given, event);
            assert_eq!(given, then, "{name}");
        }
    }

    #[test]
    fn state_and_events_round_trip_through_json() {
        for case in cases() {
            let json = serde_json::to_value(&case.then).unwrap();
            assert_eq!(
                json["type"],
                Accounting::event_type(&case.then),
                "{}",
                case.name
            );
            assert_eq!(case.then.return_id(), case.when.return_id);
            let back: AccountingEvent = serde_json::from_value(json).unwrap();
            assert_eq!(back, case.then, "{}", case.name);
        }
        let json = serde_json::to_value(&cases()[0].then).unwrap();
        assert_eq!(json["account"], "6950");
        assert_eq!(json["month"], "2026-03");

        let state = ledger(3, &[(Currency::Eur, 4_200), (Currency::Gbp, 1)]);
        let text = serde_json::to_string(&state).unwrap();
        assert_eq!(text, r#"{"disposals":3,"totals":{"EUR":4200,"GBP":1}}"#);
        assert_eq!(serde_json::from_str::<MonthLedger>(&text).unwrap(), state);
    }
}
