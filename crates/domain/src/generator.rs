//! A deterministic source of realistic refund requests for demos, benchmarks and tests.
//!
//! Request `i` depends only on `(seed, i)`: it is computed from its own ChaCha8 stream keyed by
//! both, so any index can be produced on its own, in any order, on any machine.

use std::ops::Range;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::catalogue::{self, LocationInfo, ModelInfo};
use crate::clock::Timestamp;
use crate::ids::{CountryCode, CustomerId, DefectCode, OrderId, ReturnId, SerialNumber};
#[cfg(test)]
use crate::ids::{LocationCode, ModelCode};
use crate::money::Money;
use crate::request::{Address, Noticed, RefundRequest, ReturnReason};

/// 2026-01-01T00:00:00Z, when request 0 is made.
pub const START_MILLIS: i64 = 1_767_225_600_000;
/// One request every 90 seconds on average (plus jitter below that): 100,000 requests span
/// about 104 days.
pub const SPACING_MILLIS: i64 = 90_000;
/// Share of requests (index > 0) that repeat the order and serial of an earlier request.
pub const DUPLICATE_RATE: f64 = 0.02;
/// Share of requests whose item sits at a location no facility serves.
pub const NO_FACILITY_RATE: f64 = 0.005;
/// Share of requests shipping to a country Inventory does not serve.
pub const UNSERVED_COUNTRY_RATE: f64 = 0.005;

/// Distinguishes this generator's streams from any other use of ChaCha with the same seed.
const STREAM_TAG: [u8; 16] = *b"refund-requests1";
const ORDER_SPACE: u64 = 100_000_000;

const FIRST_NAMES: &[&str] = &[
    "Sanne", "Lukas", "Camille", "Jan", "Sofia", "Mateo", "Freja", "Tomás", "Aoife", "Zofia",
    "Noah", "Elif", "Matteo", "Ines", "Oskar", "Léa",
];
const LAST_NAMES: &[&str] = &[
    "de Vries",
    "Müller",
    "Dubois",
    "Novák",
    "Rossi",
    "García",
    "Jensen",
    "Silva",
    "Murphy",
    "Kowalska",
    "Janssens",
    "Schmidt",
    "Andersson",
    "Bauer",
    "Moreau",
    "Peeters",
];
/// (city, country, postal code, street).
type City = (&'static str, &'static str, &'static str, &'static str);
const SERVED_CITIES: &[City] = &[
    ("Amsterdam", "NL", "1016 DK", "Keizersgracht"),
    ("Utrecht", "NL", "3511 LX", "Oudegracht"),
    ("Antwerpen", "BE", "2000", "Meir"),
    ("Luxembourg", "LU", "L-1118", "Rue Aldringen"),
    ("Berlin", "DE", "10115", "Invalidenstraße"),
    ("München", "DE", "80331", "Sendlinger Straße"),
    ("Wien", "AT", "1010", "Kärntner Straße"),
    ("Lyon", "FR", "69002", "Rue de la République"),
    ("Praha", "CZ", "110 00", "Národní"),
    ("Kraków", "PL", "31-042", "Floriańska"),
    ("København", "DK", "1160", "Strøget"),
    ("Göteborg", "SE", "411 03", "Kungsgatan"),
    ("Lisboa", "PT", "1100-148", "Rua Augusta"),
    ("Madrid", "ES", "28013", "Calle Mayor"),
    ("Milano", "IT", "20121", "Via Brera"),
    ("Dublin", "IE", "D02 X285", "Grafton Street"),
];
const UNSERVED_CITIES: &[City] = &[
    ("Zürich", "CH", "8001", "Bahnhofstrasse"),
    ("Oslo", "NO", "0159", "Karl Johans gate"),
    ("Reykjavík", "IS", "101", "Laugavegur"),
];
const SERIAL_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// Produces refund request `i` of the run identified by `seed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Generator {
    seed: u64,
}

impl Generator {
    pub const fn new(seed: u64) -> Self {
        Self { seed }
    }

    pub const fn seed(&self) -> u64 {
        self.seed
    }

    /// Request number `index`; the same `(seed, index)` always yields the same request.
    pub fn request(&self, index: u64) -> RefundRequest {
        let mut rng = self.rng(index);
        let return_id = ReturnId::new(uuid::Builder::from_random_bytes(rng.random()).into_uuid());

        // About 2% repeat an earlier return's order and device: a duplicate claim.
        let earlier = (index > 0 && rng.random_bool(DUPLICATE_RATE))
            .then(|| self.request(rng.random_range(0..index)));

        let (order_id, customer_id, model, serial, ship_to) = match earlier {
            Some(e) => (e.order_id, e.customer_id, e.model, e.serial, e.ship_to),
            None => {
                let info = pick_model(&mut rng);
                let serial = format!("{}-{}", info.code, random_alnum(&mut rng, 10));
                (
                    self.order_id(index),
                    customer(&mut rng),
                    info.model_code(),
                    SerialNumber::parse(serial).expect("model code + 10 alnum is a valid serial"),
                    address(&mut rng),
                )
            }
        };
        let info = catalogue::model(&model).expect("the generator only picks catalogue models");
        let defect = catalogue::DEFECTS[pick(&mut rng, catalogue::DEFECTS.len())];
        let location = pick_location(&mut rng);

        let offset = i64::try_from(index)
            .unwrap_or(i64::MAX)
            .saturating_mul(SPACING_MILLIS)
            .saturating_add(rng.random_range(0..SPACING_MILLIS));
        // Drawn last, so the fields above are what they were before the reason was structured.
        let reason = reason(&mut rng, defect);

        RefundRequest {
            return_id,
            order_id,
            customer_id,
            model,
            serial,
            reason,
            item_location: location.location_code(),
            unit_cost: info.unit_cost(),
            refund_amount: Money::eur(info.price_minor),
            ship_to,
            requested_at: Timestamp::from_unix_millis(START_MILLIS.saturating_add(offset)),
        }
    }

    /// Requests `range.start..range.end`, in index order.
    pub fn requests(&self, range: Range<u64>) -> impl Iterator<Item = RefundRequest> {
        let generator = *self;
        range.map(move |i| generator.request(i))
    }

    fn rng(&self, index: u64) -> ChaCha8Rng {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&self.seed.to_le_bytes());
        key[8..16].copy_from_slice(&index.to_le_bytes());
        key[16..].copy_from_slice(&STREAM_TAG);
        ChaCha8Rng::from_seed(key)
    }

    /// `SO-` + 8 digits: an affine bijection of the index modulo 10^8 scrambled by the seed, so
    /// distinct indices below 10^8 never share an order by accident.
    fn order_id(&self, index: u64) -> OrderId {
        let mut a = splitmix64(self.seed) % ORDER_SPACE;
        a |= 1; // odd ...
        if a % 10 == 5 {
            a += 2; // ... and not a multiple of 5: coprime with 10^8, so invertible.
        }
        let b = splitmix64(self.seed ^ 0x5A5A_5A5A_5A5A_5A5A) % ORDER_SPACE;
        let n = (a * (index % ORDER_SPACE) + b) % ORDER_SPACE;
        OrderId::parse(format!("SO-{n:08}")).expect("8 digits")
    }
}

/// SplitMix64's output function: a fast, well-mixed bijection on u64.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform index below `len` (sampled as u32 so the stream is the same on every platform).
fn pick(rng: &mut ChaCha8Rng, len: usize) -> usize {
    let len = u32::try_from(len).expect("small static lists");
    rng.random_range(0..len) as usize
}

fn pick_model(rng: &mut ChaCha8Rng) -> &'static ModelInfo {
    let total: u32 = catalogue::MODELS.iter().map(|m| m.return_weight).sum();
    let mut r = rng.random_range(0..total);
    for m in catalogue::MODELS {
        if r < m.return_weight {
            return m;
        }
        r -= m.return_weight;
    }
    unreachable!("r < total weight")
}

fn pick_location(rng: &mut ChaCha8Rng) -> &'static LocationInfo {
    let want_facility = !rng.random_bool(NO_FACILITY_RATE);
    let candidates: Vec<&LocationInfo> = catalogue::LOCATIONS
        .iter()
        .filter(|l| l.facility.is_some() == want_facility)
        .collect();
    candidates[pick(rng, candidates.len())]
}

fn random_alnum(rng: &mut ChaCha8Rng, len: usize) -> String {
    (0..len)
        .map(|_| char::from(SERIAL_ALPHABET[pick(rng, SERIAL_ALPHABET.len())]))
        .collect()
}

/// Share of returns found faulty out of the box.
const ON_ARRIVAL_RATE: f64 = 0.15;
/// Share of returns with the customer's own description.
const DESCRIBED_RATE: f64 = 0.4;
const DESCRIPTIONS: &[&str] = &[
    "Stopped working after a week.",
    "Gets hot while charging.",
    "Happens every time I switch it on.",
    "Intermittent, worse in the evening.",
    "Already tried a factory reset.",
];

fn reason(rng: &mut ChaCha8Rng, defect: &str) -> ReturnReason {
    let noticed = if rng.random_bool(ON_ARRIVAL_RATE) {
        Noticed::OnArrival
    } else {
        Noticed::InUse
    };
    let description = rng
        .random_bool(DESCRIBED_RATE)
        .then(|| DESCRIPTIONS[pick(rng, DESCRIPTIONS.len())].to_string());
    ReturnReason {
        defect: DefectCode::parse(defect).expect("catalogue defects are valid"),
        noticed,
        description,
    }
}

fn customer(rng: &mut ChaCha8Rng) -> CustomerId {
    let n: u32 = rng.random_range(0..1_000_000);
    CustomerId::parse(format!("C-{n:06}")).expect("6 digits")
}

fn address(rng: &mut ChaCha8Rng) -> Address {
    let cities = if rng.random_bool(UNSERVED_COUNTRY_RATE) {
        UNSERVED_CITIES
    } else {
        SERVED_CITIES
    };
    let (city, country, postal_code, street) = cities[pick(rng, cities.len())];
    let first = FIRST_NAMES[pick(rng, FIRST_NAMES.len())];
    let last = LAST_NAMES[pick(rng, LAST_NAMES.len())];
    let number: u32 = rng.random_range(1..250);
    Address {
        name: format!("{first} {last}"),
        street: format!("{street} {number}"),
        city: city.to_owned(),
        postal_code: postal_code.to_owned(),
        country: CountryCode::parse(country).expect("static country codes are valid"),
    }
}

/// The location code used when a test needs one no facility serves.
#[cfg(test)]
pub(crate) fn unserved_location() -> LocationCode {
    catalogue::LOCATIONS
        .iter()
        .find(|l| l.facility.is_none())
        .expect("the catalogue has a location without facility")
        .location_code()
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;

    #[test]
    fn same_seed_and_index_give_the_same_request() {
        let g = Generator::new(42);
        for i in [0, 1, 17, 9_999, 1 << 40, u64::MAX] {
            assert_eq!(g.request(i), Generator::new(42).request(i), "index {i}");
        }
        let batch: Vec<_> = g.requests(100..110).collect();
        let single: Vec<_> = (100..110).map(|i| g.request(i)).collect();
        assert_eq!(batch, single);
    }

    #[test]
    fn different_seeds_give_different_runs() {
        let (a, b) = (Generator::new(1).request(5), Generator::new(2).request(5));
        assert_ne!(a.return_id, b.return_id);
        assert_ne!(a.order_id, b.order_id);
    }

    #[test]
    fn ten_thousand_requests_are_valid_unique_and_in_time_order() {
        let g = Generator::new(7);
        let mut ids = HashSet::new();
        let mut previous = None;
        for req in g.requests(0..10_000) {
            req.validate()
                .unwrap_or_else(|e| panic!("{}: {e}", req.return_id));
            assert_eq!(req.return_id.as_uuid().get_version_num(), 4);
            assert!(ids.insert(req.return_id));
            assert!(req.serial.as_str().starts_with(req.model.as_str()));
            assert!(previous < Some(req.requested_at));
            previous = Some(req.requested_at);
        }
    }

    #[test]
    fn duplicates_repeat_an_earlier_order_and_serial() {
        let g = Generator::new(7);
        let mut first_seen: HashMap<OrderId, RefundRequest> = HashMap::new();
        let mut duplicates = 0;
        for req in g.requests(0..10_000) {
            match first_seen.get(&req.order_id) {
                Some(first) => {
                    duplicates += 1;
                    assert_eq!(
                        (&first.serial, &first.customer_id, &first.model),
                        (&req.serial, &req.customer_id, &req.model)
                    );
                }
                None => {
                    first_seen.insert(req.order_id.clone(), req);
                }
            }
        }
        assert!((120..=300).contains(&duplicates), "{duplicates} duplicates");
    }

    #[test]
    fn rare_cases_are_rare_but_present() {
        let g = Generator::new(7);
        let reqs: Vec<_> = g.requests(0..20_000).collect();
        let unserved = reqs
            .iter()
            .filter(|r| !catalogue::serves_country(&r.ship_to.country))
            .count();
        let no_facility = reqs
            .iter()
            .filter(|r| catalogue::facility_for(&r.item_location).is_none())
            .count();
        assert!((40..=200).contains(&unserved), "{unserved} unserved");
        assert!(
            (40..=200).contains(&no_facility),
            "{no_facility} without facility"
        );
        assert!(reqs.iter().any(|r| r.item_location == unserved_location()));
    }

    #[test]
    fn a_100k_run_spans_months_and_exhausts_some_stock() {
        let g = Generator::new(2026);
        let mut per_model: HashMap<ModelCode, u32> = HashMap::new();
        for req in g.requests(0..100_000) {
            *per_model.entry(req.model).or_default() += 1;
        }
        let exhausted = catalogue::MODELS
            .iter()
            .filter(|m| per_model[&m.model_code()] > m.initial_stock)
            .count();
        assert!((2..=5).contains(&exhausted), "{exhausted} models run out");

        let first = g.request(0).requested_at.month();
        let last = g.request(99_999).requested_at.month();
        assert_eq!(first.to_string(), "2026-01");
        assert_eq!(last.to_string(), "2026-04");
    }
}
