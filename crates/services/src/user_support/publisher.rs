use std::sync::Arc;

use returns_domain::RefundRequest;
use returns_eventlog::{wire, EventLog, Position, RETURN_ORDERS};

use crate::ServiceError;

/// User Support's one repeatable call: publish the request. It knows nothing of who reacts.
#[derive(Clone)]
pub struct Publisher {
    log: Arc<dyn EventLog>,
}

impl Publisher {
    pub fn new(log: Arc<dyn EventLog>) -> Self {
        Publisher { log }
    }

    /// How many records `returnOrders` holds (creating the topic if needed). Generated returns
    /// continue at this index, so a second run publishes new returns instead of repeating old ones.
    pub async fn records_on_topic(&self) -> Result<u64, ServiceError> {
        self.log.ensure_topic(RETURN_ORDERS).await?;
        Ok(self.log.end_offsets(RETURN_ORDERS).await?.iter().sum())
    }

    /// Append the requests to `returnOrders`, each keyed by its return, in one batch.
    pub async fn publish(&self, requests: &[RefundRequest]) -> Result<Vec<Position>, ServiceError> {
        let records = requests
            .iter()
            .map(|r| wire::encode_refund_request(r, &wire::refund_request_envelope(r)))
            .collect();
        Ok(self.log.append(RETURN_ORDERS, records).await?)
    }
}
