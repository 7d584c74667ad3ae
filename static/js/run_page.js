/* A run's live page.
 *
 * Follows the run's own stream (resuming after the last seq it saw, so a dropped
 * connection or a reload catches up) and, for progress, the user's stream filtered to
 * the run's step jobs. Events only say "something changed": the page then asks the
 * server for its live part again (at most every REFRESH_MS) and applies it. Status and
 * steps are replaced (open log panels stay open); a result tile is only ever added,
 * so a rating being typed is never wiped.
 */
(function () {
  "use strict";
  const root = document.getElementById("run");
  if (!root) return;
  const REFRESH_MS = 400;
  const TERMINAL = new Set(["completed", "failed", "cancelled"]);
  let stepJobs = new Set();
  let timer = null;
  let inFlight = false;
  let again = false;

  function readSummary(container) {
    const summary = container.querySelector("#run-summary");
    stepJobs = new Set((summary.dataset.stepJobs || "").split(",").filter(Boolean));
    return summary.dataset.status;
  }

  function apply(html) {
    const next = document.createElement("div");
    next.innerHTML = html;
    const live = document.getElementById("run-live");
    const open = new Set([...live.querySelectorAll("details[open]")].map((d) => d.dataset.key));
    live.querySelector("#run-summary").replaceWith(next.querySelector("#run-summary"));
    const steps = next.querySelector("#run-steps");
    for (const details of steps.querySelectorAll("details")) {
      if (open.has(details.dataset.key)) details.open = true;
    }
    live.querySelector("#run-steps").replaceWith(steps);
    const outputs = live.querySelector("#run-outputs");
    for (const tile of next.querySelectorAll("#run-outputs > li")) {
      if (!outputs.querySelector(`li[data-format="${tile.dataset.format}"]`)) outputs.append(tile);
    }
    const copy = next.querySelector("#run-copy");
    if (copy && !live.querySelector("#run-copy")) outputs.before(copy);
    const empty = live.querySelector("#run-no-outputs");
    const nextEmpty = next.querySelector("#run-no-outputs");
    if (empty && !nextEmpty) empty.remove();
    else if (empty && nextEmpty) empty.replaceWith(nextEmpty);
    return readSummary(live);
  }

  async function refresh() {
    if (inFlight) { again = true; return; }
    inFlight = true;
    try {
      const response = await fetch(root.dataset.liveUrl, { credentials: "same-origin" });
      if (response.ok) {
        const status = apply(await response.text());
        if (TERMINAL.has(status)) finish();
      }
    } finally {
      inFlight = false;
      if (again) { again = false; schedule(); }
    }
  }

  function schedule() {
    if (timer) return;
    timer = setTimeout(() => { timer = null; refresh(); }, REFRESH_MS);
  }

  function finish() {
    runFeed.stop();
    stepFeed.stop();
  }

  const connection = document.getElementById("connection");
  const runFeed = new window.BreniaJobEvents({
    jobId: root.dataset.jobId,
    onSnapshot: schedule,
    onEvent: schedule,
    onConnection: (state) => { connection.dataset.state = state; },
  });
  runFeed.lastSeq[root.dataset.jobId] = Number(root.dataset.lastSeq) || 0;
  const stepFeed = new window.BreniaJobEvents({
    onEvent: (event) => { if (stepJobs.has(event.job_id)) schedule(); },
  });
  window.breniaRunFeed = runFeed;

  if (!TERMINAL.has(readSummary(document))) {
    runFeed.start();
    stepFeed.start();
  } else {
    connection.dataset.state = "done";
  }
})();
