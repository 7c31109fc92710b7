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

    /// Append the requests to `returnOrders`, each keyed by its return, in one batch.
    pub async fn publish(&self, requests: &[RefundRequest]) -> Result<Vec<Position>, ServiceError> {
        let records = requests
            .iter()
            .map(|r| wire::encode_refund_request(r, &wire::refund_request_envelope(r)))
            .collect();
        Ok(self.log.append(RETURN_ORDERS, records).await?)
    }
}
