//! Analytics: usage statistics built from the events, by a subscriber of its own.
//!
//! The view reads `returnOrders` and the teams' topics as the group
//! [`Analytics::GROUP`] into `<data>/analytics.db`, which holds facts, one row per event:
//!
//! | table | one row per | holds |
//! |---|---|---|
//! | `returns` | return (its first request) | model, defect, when noticed, month requested, publish time |
//! | `team_events` | team event | team, return, event type, event time; the model of a backorder, the month, currency and amount of a refund or a disposal |
//!
//! [`ViewStore::<Analytics>::stats`] aggregates them when asked. A team's processing latency is
//! its event's time minus the request's publish time, joined by return id.

use std::collections::BTreeMap;

use returns_domain::{
    Accounting, AccountingEvent, Inventory, InventoryEvent, Money, Noticed, Sales, SalesEvent, Team,
};
use rusqlite::{params, Connection, Transaction};
use serde::Serialize;

use crate::views::projection::{
    unix_us, view_teams, Projection, ReturnsEvent, ReturnsEvents, TeamDecision, ViewStore,
};
use crate::ServiceError;

/// The analytics projection.
pub struct Analytics;

/// The analytics view's own store.
pub type AnalyticsStore = ViewStore<Analytics>;

const ORDER_REFUNDED: &str = "OrderRefunded";
const REPLACEMENT_BACKORDERED: &str = "ReplacementBackordered";
const ASSET_DISPOSAL_CHARGED: &str = "AssetDisposalCharged";

impl Projection for Analytics {
    const NAME: &'static str = "analytics";
    const GROUP: &'static str = "returns.analytics";
    type Source = ReturnsEvents;

    fn create_tables(conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS returns (
                 return_id    TEXT PRIMARY KEY,
                 model        TEXT NOT NULL,
                 defect       TEXT NOT NULL,
                 noticed      TEXT NOT NULL,
                 month        TEXT NOT NULL,
                 published_us INTEGER NOT NULL
             ) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS team_events (
                 team         TEXT NOT NULL,
                 return_id    TEXT NOT NULL,
                 event_type   TEXT NOT NULL,
                 at_us        INTEGER NOT NULL,
                 model        TEXT,
                 month        TEXT,
                 currency     TEXT,
                 amount_minor INTEGER
             );",
        )
    }

    fn write(tx: &Transaction<'_>, event: &ReturnsEvent) -> rusqlite::Result<()> {
        match event {
            // A return counts once, as its first request describes it.
            ReturnsEvent::Requested { envelope, request } => tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO returns
                     (return_id, model, defect, noticed, month, published_us)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![
                    request.return_id.to_string(),
                    request.model.as_str(),
                    request.reason.defect.as_str(),
                    request.reason.noticed.as_str(),
                    request.requested_at.month().to_string(),
                    unix_us(envelope)
                ])?,
            ReturnsEvent::Decided { envelope, decision } => {
                let fact = Fact::of(decision);
                tx.prepare_cached(
                    "INSERT INTO team_events
                     (team, return_id, event_type, at_us, model, month, currency, amount_minor)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?
                .execute(params![
                    decision.team(),
                    decision.return_id().to_string(),
                    decision.event_type(),
                    unix_us(envelope),
                    fact.model,
                    fact.month,
                    fact.amount.map(|m| m.currency().code()),
                    fact.amount.map(Money::minor)
                ])?
            }
        };
        Ok(())
    }
}

/// The figures a team event adds beyond its type and time.
#[derive(Default)]
struct Fact {
    model: Option<String>,
    month: Option<String>,
    amount: Option<Money>,
}

impl Fact {
    fn of(decision: &TeamDecision) -> Fact {
        match decision {
            TeamDecision::Sales(SalesEvent::OrderRefunded { amount, .. }) => Fact {
                amount: Some(*amount),
                ..Fact::default()
            },
            TeamDecision::Inventory(InventoryEvent::ReplacementBackordered { model, .. }) => Fact {
                model: Some(model.to_string()),
                ..Fact::default()
            },
            TeamDecision::Accounting(AccountingEvent::AssetDisposalCharged {
                month,
                amount,
                ..
            }) => Fact {
                month: Some(month.to_string()),
                amount: Some(*amount),
                ..Fact::default()
            },
            _ => Fact::default(),
        }
    }
}

/// Everything `returns stats` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    /// Distinct returns requested.
    pub returns: u64,
    pub returns_by_model_month: Vec<ModelMonth>,
    pub returns_by_defect_month: Vec<DefectMonth>,
    /// Sales' refunds (`OrderRefunded`), per currency.
    pub refunds: Vec<MoneyTotal>,
    /// Accounting's disposals (`AssetDisposalCharged`), per month booked and currency.
    pub disposal_cost_by_month: Vec<MonthCost>,
    /// Inventory's backorders (`ReplacementBackordered`), per model.
    pub backorders_by_model: Vec<ModelCount>,
    /// Per team (the four reacting teams, then Quality): its event's time minus the request's
    /// publish time. A team that joined late (Quality) measures how late it joined.
    pub latency_ms: Vec<TeamLatency>,
    /// Records the view cannot read (yet), per kind of reason. Each catch-up reads them again,
    /// and one read then leaves this count.
    pub skipped: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelMonth {
    pub model: String,
    pub month: String,
    pub returns: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DefectMonth {
    pub defect: String,
    pub month: String,
    pub returns: u64,
    pub noticed_on_arrival: u64,
    /// Requests that do not say when the defect was noticed (version 1 requests).
    pub noticed_unknown: u64,
    /// On arrival, as a share of the returns that say when (`None` when none do).
    pub on_arrival_share: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MoneyTotal {
    pub currency: String,
    pub count: u64,
    pub total_minor: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MonthCost {
    pub month: String,
    pub currency: String,
    pub count: u64,
    pub total_minor: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelCount {
    pub model: String,
    pub count: u64,
}

/// Milliseconds; `None` when the team has no event joined to a request yet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TeamLatency {
    pub team: &'static str,
    pub count: u64,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

impl TeamLatency {
    /// From the team's latencies in microseconds, sorted ascending (nearest-rank percentiles).
    fn of(team: &'static str, sorted_us: &[i64]) -> Self {
        let n = sorted_us.len();
        let at = |q: f64| -> Option<f64> {
            let rank = ((q * n as f64).ceil() as usize).clamp(1, n.max(1));
            sorted_us.get(rank - 1).map(|us| *us as f64 / 1000.0)
        };
        TeamLatency {
            team,
            count: n as u64,
            p50: at(0.50),
            p95: at(0.95),
            p99: at(0.99),
            max: sorted_us.last().map(|us| *us as f64 / 1000.0),
        }
    }
}

impl ViewStore<Analytics> {
    /// Aggregate the facts.
    pub fn stats(&self) -> Result<Stats, ServiceError> {
        let conn = self.conn();
        let err = self.err();
        let returns = conn
            .query_row("SELECT COUNT(*) FROM returns", [], |r| r.get::<_, i64>(0))
            .map_err(err)? as u64;
        let returns_by_model_month = self.rows(
            "SELECT model, month, COUNT(*) FROM returns GROUP BY model, month ORDER BY model, month",
            params![],
            |r| {
                Ok(ModelMonth {
                    model: r.get(0)?,
                    month: r.get(1)?,
                    returns: r.get::<_, i64>(2)? as u64,
                })
            },
        )?;
        let returns_by_defect_month = self.rows(
            "SELECT defect, month, COUNT(*), SUM(noticed = ?1), SUM(noticed = ?2) FROM returns
             GROUP BY defect, month ORDER BY defect, month",
            params![Noticed::OnArrival.as_str(), Noticed::Unknown.as_str()],
            |r| {
                let returns = r.get::<_, i64>(2)? as u64;
                let on_arrival = r.get::<_, i64>(3)? as u64;
                let unknown = r.get::<_, i64>(4)? as u64;
                let known = returns - unknown;
                Ok(DefectMonth {
                    defect: r.get(0)?,
                    month: r.get(1)?,
                    returns,
                    noticed_on_arrival: on_arrival,
                    noticed_unknown: unknown,
                    on_arrival_share: (known > 0).then(|| on_arrival as f64 / known as f64),
                })
            },
        )?;
        let refunds = self.rows(
            "SELECT currency, COUNT(*), SUM(amount_minor) FROM team_events
             WHERE team = ?1 AND event_type = ?2 GROUP BY currency ORDER BY currency",
            params![Sales::NAME, ORDER_REFUNDED],
            |r| {
                Ok(MoneyTotal {
                    currency: r.get(0)?,
                    count: r.get::<_, i64>(1)? as u64,
                    total_minor: r.get(2)?,
                })
            },
        )?;
        let disposal_cost_by_month = self.rows(
            "SELECT month, currency, COUNT(*), SUM(amount_minor) FROM team_events
             WHERE team = ?1 AND event_type = ?2 GROUP BY month, currency ORDER BY month, currency",
            params![Accounting::NAME, ASSET_DISPOSAL_CHARGED],
            |r| {
                Ok(MonthCost {
                    month: r.get(0)?,
                    currency: r.get(1)?,
                    count: r.get::<_, i64>(2)? as u64,
                    total_minor: r.get(3)?,
                })
            },
        )?;
        let backorders_by_model = self.rows(
            "SELECT model, COUNT(*) FROM team_events
             WHERE team = ?1 AND event_type = ?2 GROUP BY model ORDER BY model",
            params![Inventory::NAME, REPLACEMENT_BACKORDERED],
            |r| {
                Ok(ModelCount {
                    model: r.get(0)?,
                    count: r.get::<_, i64>(1)? as u64,
                })
            },
        )?;
        Ok(Stats {
            returns,
            returns_by_model_month,
            returns_by_defect_month,
            refunds,
            disposal_cost_by_month,
            backorders_by_model,
            latency_ms: self.latencies()?,
            skipped: self.skipped_by_kind()?,
        })
    }

    /// Every team event joined to its return's request, team by team, sorted in SQLite.
    fn latencies(&self) -> Result<Vec<TeamLatency>, ServiceError> {
        let mut by_team: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        let mut stmt = self
            .conn()
            .prepare(
                "SELECT t.team, t.at_us - r.published_us AS us
                 FROM team_events t JOIN returns r ON r.return_id = t.return_id
                 ORDER BY t.team, us",
            )
            .map_err(self.err())?;
        let mut rows = stmt.query([]).map_err(self.err())?;
        while let Some(row) = rows.next().map_err(self.err())? {
            let team: String = row.get(0).map_err(self.err())?;
            let us: i64 = row.get(1).map_err(self.err())?;
            by_team.entry(team).or_default().push(us);
        }
        Ok(view_teams()
            .map(|team| TeamLatency::of(team, by_team.get(team).map_or(&[][..], Vec::as_slice)))
            .collect())
    }

    fn rows<T>(
        &self,
        sql: &str,
        params: &[&dyn rusqlite::ToSql],
        row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, ServiceError> {
        let mut stmt = self.conn().prepare(sql).map_err(self.err())?;
        let rows = stmt.query_map(params, row).map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }
}

#[cfg(test)]
mod tests {
    use returns_domain::{
        Currency, Generator, Manufacturing, Noticed, RefundId, RefundRequest, ReturnReason,
        YearMonth,
    };

    use returns_eventlog::Record;

    use super::*;
    use crate::views::projection::testkit::{
        bad_request, decided, first_decision, incoming, requested,
    };
    use crate::views::projection::BatchCounts;

    fn request(i: u64, model: &str, defect: &str, noticed: Noticed, month: &str) -> RefundRequest {
        let mut req = Generator::new(9).request(i);
        req.model = model.parse().unwrap();
        req.reason = ReturnReason {
            noticed,
            ..ReturnReason::defect_only(defect.parse().unwrap())
        };
        req.requested_at =
            returns_domain::Timestamp::parse_rfc3339(&format!("{month}-15T10:00:00Z")).unwrap();
        req
    }

    fn refund(req: &RefundRequest, minor: i64, currency: Currency) -> SalesEvent {
        SalesEvent::OrderRefunded {
            return_id: req.return_id,
            order_id: req.order_id.clone(),
            customer_id: req.customer_id.clone(),
            amount: Money::new(minor, currency),
            refund_id: RefundId::for_return(&req.return_id),
        }
    }

    fn apply(store: &mut AnalyticsStore, records: &[Record]) -> BatchCounts {
        store.apply(&incoming::<Analytics>(records)).unwrap()
    }

    #[test]
    fn returns_are_counted_per_model_defect_and_month() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = AnalyticsStore::open(dir.path()).unwrap();
        let reqs = [
            request(
                0,
                "AURA-PHONE-12",
                "BATTERY_SWELL",
                Noticed::OnArrival,
                "2026-01",
            ),
            request(
                1,
                "AURA-PHONE-12",
                "BATTERY_SWELL",
                Noticed::InUse,
                "2026-01",
            ),
            request(
                2,
                "AURA-PHONE-12",
                "BATTERY_SWELL",
                Noticed::Unknown,
                "2026-02",
            ),
            request(3, "AURA-PHONE-12", "NO_POWER", Noticed::Unknown, "2026-02"),
            request(
                4,
                "NOVA-TAB-10",
                "BATTERY_SWELL",
                Noticed::OnArrival,
                "2026-02",
            ),
        ];
        let mut records: Vec<Record> = reqs
            .iter()
            .enumerate()
            .map(|(i, r)| requested(r, i as u64, 0))
            .collect();
        // A second request for return 0 does not make it two returns.
        records.push(requested(&reqs[0], 5, 0));
        records.insert(2, bad_request(6));
        let counts = apply(&mut store, &records);
        assert_eq!((counts.applied, counts.skipped), (6, 1));

        let stats = store.stats().unwrap();
        assert_eq!(stats.returns, 5);
        let by_model: Vec<(&str, &str, u64)> = stats
            .returns_by_model_month
            .iter()
            .map(|m| (m.model.as_str(), m.month.as_str(), m.returns))
            .collect();
        assert_eq!(
            by_model,
            vec![
                ("AURA-PHONE-12", "2026-01", 2),
                ("AURA-PHONE-12", "2026-02", 2),
                ("NOVA-TAB-10", "2026-02", 1),
            ]
        );
        let row = |defect: &str, month: &str, returns, on_arrival, unknown, share| DefectMonth {
            defect: defect.into(),
            month: month.into(),
            returns,
            noticed_on_arrival: on_arrival,
            noticed_unknown: unknown,
            on_arrival_share: share,
        };
        assert_eq!(
            stats.returns_by_defect_month,
            vec![
                row("BATTERY_SWELL", "2026-01", 2, 1, 0, Some(0.5)),
                row("BATTERY_SWELL", "2026-02", 2, 1, 1, Some(1.0)),
                row("NO_POWER", "2026-02", 1, 0, 1, None),
            ]
        );
        assert_eq!(stats.skipped, BTreeMap::from([("malformed".into(), 1)]));
    }

    #[test]
    fn money_backorders_and_latency_come_from_the_teams_events() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = AnalyticsStore::open(dir.path()).unwrap();
        let reqs: Vec<RefundRequest> = (0..4)
            .map(|i| {
                request(
                    i,
                    "AURA-PHONE-12",
                    "BATTERY_SWELL",
                    Noticed::InUse,
                    "2026-03",
                )
            })
            .collect();
        // Requests published at 1 s, 2 s, 3 s, 4 s.
        let mut records: Vec<Record> = reqs
            .iter()
            .enumerate()
            .map(|(i, r)| requested(r, i as u64, 1_000 * (i as i64 + 1)))
            .collect();
        // Sales decides each 10, 20, 30, 40 ms after it was published; one refund is in USD and
        // one request is refused.
        let mut refused = Sales::initial(&Sales::key(&reqs[3]));
        Sales::evolve(&mut refused, &first_decision::<Sales>(&reqs[3]));
        let sales = [
            refund(&reqs[0], 79_900, Currency::Eur),
            refund(&reqs[1], 50_000, Currency::Eur),
            refund(&reqs[2], 1_000, Currency::Usd),
            Sales::decide(&refused, &reqs[3]),
        ];
        for (i, e) in sales.iter().enumerate() {
            let at = 1_000 * (i as i64 + 1) + 10 * (i as i64 + 1);
            records.push(decided::<Sales>(e, i as u64, at));
        }
        let backorder = |r: &RefundRequest, model: &str| InventoryEvent::ReplacementBackordered {
            return_id: r.return_id,
            model: model.parse().unwrap(),
            position: 1,
        };
        records.push(decided::<Inventory>(
            &backorder(&reqs[0], "NOVA-TAB-10"),
            0,
            1_005,
        ));
        records.push(decided::<Inventory>(
            &backorder(&reqs[1], "NOVA-TAB-10"),
            1,
            2_005,
        ));
        records.push(decided::<Inventory>(
            &backorder(&reqs[2], "AURA-PHONE-12"),
            2,
            3_005,
        ));
        let disposal =
            |r: &RefundRequest, month: &str, minor: i64| AccountingEvent::AssetDisposalCharged {
                return_id: r.return_id,
                month: month.parse::<YearMonth>().unwrap(),
                amount: Money::eur(minor),
                account: returns_domain::Account::AssetDisposalExpense,
                entry_id: match first_decision::<Accounting>(r) {
                    AccountingEvent::AssetDisposalCharged { entry_id, .. } => entry_id,
                    other => panic!("{other:?}"),
                },
            };
        records.push(decided::<Accounting>(
            &disposal(&reqs[0], "2026-03", 41_000),
            0,
            1_001,
        ));
        records.push(decided::<Accounting>(
            &disposal(&reqs[1], "2026-03", 9_000),
            1,
            2_001,
        ));
        records.push(decided::<Accounting>(
            &disposal(&reqs[2], "2026-04", 500),
            2,
            3_001,
        ));
        let mut records_again = records.clone();
        let counts = apply(&mut store, &records);
        assert_eq!(counts.applied, 14);
        // Redelivered, with one more event: only the new one counts.
        records_again.push(decided::<Manufacturing>(
            &first_decision::<Manufacturing>(&reqs[0]),
            0,
            1_500,
        ));
        let again = apply(&mut store, &records_again);
        assert_eq!((again.applied, again.duplicates), (1, 14));

        let stats = store.stats().unwrap();
        assert_eq!(
            stats.refunds,
            vec![
                MoneyTotal {
                    currency: "EUR".into(),
                    count: 2,
                    total_minor: 129_900
                },
                MoneyTotal {
                    currency: "USD".into(),
                    count: 1,
                    total_minor: 1_000
                },
            ]
        );
        let month = |m: &str, count, total_minor| MonthCost {
            month: m.into(),
            currency: "EUR".into(),
            count,
            total_minor,
        };
        assert_eq!(
            stats.disposal_cost_by_month,
            vec![month("2026-03", 2, 50_000), month("2026-04", 1, 500)]
        );
        let count = |m: &str, count| ModelCount {
            model: m.into(),
            count,
        };
        assert_eq!(
            stats.backorders_by_model,
            vec![count("AURA-PHONE-12", 1), count("NOVA-TAB-10", 2)]
        );
        let latency: BTreeMap<&str, &TeamLatency> =
            stats.latency_ms.iter().map(|l| (l.team, l)).collect();
        let sales = latency["sales"];
        assert_eq!(sales.count, 4);
        assert_eq!(
            (sales.p50, sales.p95, sales.p99, sales.max),
            (Some(20.0), Some(40.0), Some(40.0), Some(40.0))
        );
        assert_eq!(
            (latency["inventory"].count, latency["inventory"].max),
            (3, Some(5.0))
        );
        assert_eq!(latency["manufacturing"].p50, Some(500.0));
        assert_eq!(latency["accounting"].p50, Some(1.0));
        assert_eq!(stats.latency_ms.len(), 5);
        assert_eq!(
            (latency["quality"].count, latency["quality"].p50),
            (0, None)
        );
    }

    #[test]
    fn nearest_rank_percentiles() {
        let us: Vec<i64> = (1..=100).map(|i| i * 1000).collect();
        let l = TeamLatency::of("sales", &us);
        assert_eq!(
            (l.count, l.p50, l.p95, l.p99, l.max),
            (100, Some(50.0), Some(95.0), Some(99.0), Some(100.0))
        );
        let none = TeamLatency::of("sales", &[]);
        assert_eq!((none.count, none.p50, none.max), (0, None, None));
        let one = TeamLatency::of("sales", &[1_500]);
        assert_eq!((one.p50, one.p99), (Some(1.5), Some(1.5)));
    }
}
