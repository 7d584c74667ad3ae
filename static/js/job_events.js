/* Live job events over Brenia's WebSocket.
 *
 *   const feed = new BreniaJobEvents({jobId, onEvent, onSnapshot, onConnection});
 *   feed.start();
 *
 * Connects to /ws/jobs/ (one job when jobId is given), reconnects with exponential
 * backoff and jitter, and on every reconnect resumes after the last sequence number
 * it saw, so the server replays what was missed and then sends a fresh snapshot.
 * Events with a sequence number already seen are dropped. An event that skips a
 * sequence number (the channel layer lost one on the way) is held back, and the
 * feed re-subscribes to that job after the last number it saw: the server replays
 * the missed events, this one included, in order, then sends a snapshot.
 */
(function (global) {
  "use strict";

  class BreniaJobEvents {
    constructor({ jobId = null, onEvent = () => {}, onSnapshot = () => {},
                  onConnection = () => {}, maxDelayMs = 10000 } = {}) {
      this.jobId = jobId;
      this.onEvent = onEvent;
      this.onSnapshot = onSnapshot;
      this.onConnection = onConnection;
      this.maxDelayMs = maxDelayMs;
      this.lastSeq = {};
      this.catchingUp = new Set();  // jobs with a catch-up subscribe in flight
      this.attempt = 0;
      this.socket = null;
      this.stopped = false;
      this.terminal = false;
    }

    url() {
      const scheme = global.location.protocol === "https:" ? "wss" : "ws";
      const params = new URLSearchParams();
      if (this.jobId) {
        params.set("job", this.jobId);
        const after = this.lastSeq[this.jobId] || 0;
        if (after) params.set("after", String(after));
      }
      const query = params.toString();
      return `${scheme}://${global.location.host}/ws/jobs/${query ? "?" + query : ""}`;
    }

    start() {
      this.stopped = false;
      this.connect();
      return this;
    }

    stop() {
      this.stopped = true;
      if (this.socket) this.socket.close(1000);
      this.onConnection("done");
    }

    connect() {
      this.onConnection("connecting");
      const socket = new WebSocket(this.url());
      this.socket = socket;
      // A new connection resumes after lastSeq for its own job; a catch-up asked on
      // the old one is moot, and a later gap may ask again.
      this.catchingUp.clear();
      socket.onopen = () => { this.attempt = 0; this.onConnection("open"); };
      socket.onmessage = (message) => this.handle(JSON.parse(message.data));
      socket.onclose = (event) => {
        if (this.socket !== socket) return;
        this.socket = null;
        if (this.stopped) return;
        if (event.code === 4401 || event.code === 4404) {
          this.onConnection(event.code === 4401 ? "unauthenticated" : "not-found");
          return;
        }
        this.onConnection("closed");
        if (!this.stopped) this.scheduleReconnect();
      };
    }

    scheduleReconnect() {
      this.attempt += 1;
      const base = Math.min(this.maxDelayMs, 250 * 2 ** (this.attempt - 1));
      const delay = base * (0.5 + Math.random());
      setTimeout(() => { if (!this.stopped) this.connect(); }, delay);
    }

    handle(event) {
      if (event.type === "snapshot") {
        const jobs = event.job ? [event.job] : (event.jobs || []);
        for (const job of jobs) {
          this.lastSeq[job.id] = Math.max(this.lastSeq[job.id] || 0, job.last_event_seq || 0);
          this.catchingUp.delete(job.id);  // the snapshot ends a catch-up
        }
        this.onSnapshot(event);
        return;
      }
      if (event.seq && event.job_id) {
        const last = this.lastSeq[event.job_id] || 0;
        if (event.seq <= last) return;
        if (event.seq > last + 1) {
          // Not delivered now: the replay brings it again after the ones missed, so
          // onEvent sees every job's events once and in order.
          this.catchUp(event.job_id, last);
          return;
        }
        this.lastSeq[event.job_id] = event.seq;
      }
      this.onEvent(event);
    }

    /* Ask the server for a job's events after `after`, then a snapshot (once at a time). */
    catchUp(jobId, after) {
      if (this.catchingUp.has(jobId)) return;
      const socket = this.socket;
      // Closed or not yet open: the reconnect resumes after lastSeq by itself.
      if (!socket || socket.readyState !== WebSocket.OPEN) return;
      this.catchingUp.add(jobId);
      socket.send(JSON.stringify({ action: "subscribe", job: jobId, after }));
    }

    /* For tests and debugging: drop the connection as a network fault would. */
    simulateDrop() {
      if (this.socket) this.socket.close(4000);
    }
  }

  global.BreniaJobEvents = BreniaJobEvents;
})(window);
