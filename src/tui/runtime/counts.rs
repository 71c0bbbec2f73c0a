//! The counts loop: live counts of the plan's tables on a connection of its own.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::checks;
use crate::db::ConnSpec;
use crate::tui::update::Msg;

/// How often live counts are refreshed while the wizard is open.
const COUNTS_INTERVAL: Duration = Duration::from_millis(1000);
/// How often a full count (rows per tenant, cross-tenant references) is taken unasked.
const FULL_COUNT_INTERVAL: Duration = Duration::from_secs(15);
/// How often the live preflight (long transactions, locks) is read.
const LIVE_INTERVAL: Duration = Duration::from_secs(5);

/// The counts loop of one plan.
pub(super) struct CountsLoop {
    pub(super) plan_hash: String,
    pub(super) task: JoinHandle<()>,
    /// `true` asks for a full count.
    pub(super) poke: mpsc::UnboundedSender<bool>,
    /// Its reports on a channel of its own: replacing the loop drops what it sent and nobody
    /// read, so a stale plan's counts never reach the model.
    pub(super) reports: mpsc::UnboundedReceiver<Msg>,
}

impl CountsLoop {
    pub(super) fn start(spec: &ConnSpec, plan: &crate::plan::Plan) -> CountsLoop {
        let (poke, pokes) = mpsc::unbounded_channel();
        let (tx, reports) = mpsc::unbounded_channel();
        let task = tokio::spawn(counts_loop(spec.clone(), plan.clone(), pokes, tx));
        CountsLoop { plan_hash: plan.plan_hash.clone(), task, poke, reports }
    }
}

impl Drop for CountsLoop {
    fn drop(&mut self) {
        // Its connection closes with the task.
        self.task.abort();
    }
}

/// The counts loop's next report; pending forever without a loop.
pub(super) async fn recv_report(counts: &mut Option<CountsLoop>) -> Option<Msg> {
    match counts {
        Some(counts) => counts.reports.recv().await,
        None => std::future::pending().await,
    }
}

/// Counts about once a second on a connection of their own; the latest result wins. A poke
/// with `true` asks for a full count (rows per tenant, cross-tenant references) at once.
async fn counts_loop(
    spec: ConnSpec,
    plan: crate::plan::Plan,
    mut pokes: mpsc::UnboundedReceiver<bool>,
    tx: mpsc::UnboundedSender<Msg>,
) {
    let mut client = None;
    let mut last_live: Option<Instant> = None;
    let mut last_full: Option<Instant> = None;
    let mut want_full = true;
    loop {
        if client.is_none() {
            match checks::connect(&spec, "tenantize wizard counts").await {
                Ok(c) => client = Some(c),
                Err(e) => {
                    let _ = tx.send(Msg::Counts(Err(e.to_string()), Instant::now()));
                }
            }
        }
        if let Some(c) = &client {
            // A full count now and then keeps rows per tenant and cross-tenant counts fresh.
            let full = want_full || last_full.is_none_or(|t| t.elapsed() > FULL_COUNT_INTERVAL);
            let result = async {
                let catalog = crate::catalog::introspect(
                    c,
                    &plan.options.schemas,
                    std::slice::from_ref(&plan.tenant.table.schema),
                )
                .await
                .map_err(|e| e.to_string())?;
                checks::count_all(c, &plan, &catalog, full).await.map_err(|e| e.to_string())
            }
            .await;
            if result.is_ok() && full {
                last_full = Some(Instant::now());
                want_full = false;
            }
            if let Err(e) = &result
                && (e.contains("connection") || e.contains("closed"))
            {
                client = None;
            }
            if tx.send(Msg::Counts(result, Instant::now())).is_err() {
                return;
            }
            if last_live.is_none_or(|t| t.elapsed() > LIVE_INTERVAL)
                && let Some(c) = &client
                && let Ok(live) = checks::live_preflight(c, &plan).await
            {
                last_live = Some(Instant::now());
                if tx.send(Msg::Live(live)).is_err() {
                    return;
                }
            }
        }
        tokio::select! {
            poke = pokes.recv() => match poke {
                Some(full) => want_full |= full,
                None => return,
            },
            _ = tokio::time::sleep(COUNTS_INTERVAL) => {}
        }
    }
}
