/* The live job page: draws the job's state and applies events as they arrive. */
(function () {
  "use strict";
  const root = document.getElementById("job");
  if (!root) return;
  const $ = (id) => document.getElementById(id);
  const LABELS = { queued: "Queued", submitted: "Submitted", in_progress: "In progress",
                   completed: "Completed", failed: "Failed", errored: "Errored",
                   cancelled: "Cancelled" };
  const TERMINAL = new Set(["completed", "failed", "errored", "cancelled"]);
  let state = JSON.parse($("job-state").textContent);

  function setStatus(status, detail) {
    const el = $("job-status");
    el.textContent = LABELS[status] || status;
    el.dataset.status = status;
    $("job-detail").textContent = detail || "";
  }

  function showImages(images) {
    const box = $("job-images");
    box.replaceChildren();
    for (const image of images || []) {
      const link = document.createElement("a");
      link.href = image.url;
      link.download = "";
      const img = document.createElement("img");
      img.src = image.url;
      img.alt = `Generated image ${image.width}×${image.height}`;
      img.width = Math.min(image.width, 512);
      link.append(img);
      const caption = document.createElement("p");
      caption.className = "muted";
      caption.textContent = `${image.width}×${image.height} ${image.format.toUpperCase()} · download`;
      link.append(caption);
      const figure = document.createElement("div");
      figure.append(link, ratingBox(image));
      box.append(figure);
    }
  }

  /* The same markup as templates_app/_rating.html, which ratings.js drives. */
  function ratingBox(image) {
    const score = image.rating ? image.rating.score : 0;
    const box = document.createElement("div");
    box.className = "rating-box";
    box.dataset.rateImage = image.id;
    box.dataset.rateUrl = `/api/images/${image.id}/rating`;
    const stars = document.createElement("div");
    stars.className = "rating";
    stars.setAttribute("role", "group");
    stars.setAttribute("aria-label", "Your rating");
    for (let n = 1; n <= 5; n++) {
      const star = document.createElement("button");
      star.type = "button";
      star.dataset.score = String(n);
      star.setAttribute("aria-pressed", String(n <= score));
      star.setAttribute("aria-label", `Rate ${n} of 5`);
      star.title = `Rate ${n} of 5`;
      star.textContent = "★";
      stars.append(star);
    }
    const status = document.createElement("span");
    status.className = "meta";
    status.dataset.ratingStatus = "";
    status.setAttribute("role", "status");
    status.textContent = score ? `Rated ${score} of 5` : "Not rated yet";
    stars.append(status);
    const more = document.createElement("details");
    const summary = document.createElement("summary");
    summary.className = "meta";
    summary.textContent = image.rating && image.rating.comment ? "Your comment" : "Add a comment";
    const label = document.createElement("label");
    label.htmlFor = `rating-comment-${image.id}`;
    label.textContent = "Comment on this image";
    const comment = document.createElement("textarea");
    comment.id = label.htmlFor;
    comment.dataset.ratingComment = "";
    comment.maxLength = 2000;
    comment.rows = 3;
    comment.value = image.rating ? image.rating.comment : "";
    const save = document.createElement("button");
    save.type = "button";
    save.className = "secondary";
    save.dataset.ratingSave = "";
    save.textContent = "Save comment";
    const row = document.createElement("p");
    row.append(save);
    more.append(summary, label, comment, row);
    box.append(stars, more);
    return box;
  }

  function appendLogs(lines) {
    if (!lines || !lines.length) return;
    const logs = $("job-logs");
    $("job-logs-toggle").hidden = false;  // no box at all until there is something to read
    logs.textContent += lines.join("\n") + "\n";
    logs.scrollTop = logs.scrollHeight;
  }

  function setProgress(value) {
    const bar = $("job-progress");
    bar.value = Math.round((value || 0) * 100);
    bar.textContent = `${bar.value} %`;
  }

  function showError(error) {
    const box = $("job-error");
    box.hidden = !error;
    box.textContent = error ? error.message : "";
  }

  function render(job) {
    state = job;
    let detail = "";
    if (job.status === "submitted" && job.queue_position !== null) {
      detail = `position ${job.queue_position} in the queue`;
    }
    setStatus(job.status, detail);
    setProgress(job.status === "completed" ? 1 : job.progress);
    showError(job.error);
    showImages(job.images);
    $("job-cost").textContent = job.cost
      ? `Cost ${Number(job.cost).toLocaleString("en", { maximumFractionDigits: 4 })} ${job.currency}`
      : "";
  }

  function apply(event) {
    switch (event.type) {
      case "queued": {
        let detail = "";
        if (event.position !== null && event.position !== undefined) {
          detail = `position ${event.position} in the queue`;
          if (event.eta_seconds) detail += ` (about ${event.eta_seconds} s)`;
        }
        setStatus(event.status, detail);
        break;
      }
      case "in_progress":
        setStatus("in_progress", "");
        if (event.progress !== null && event.progress !== undefined) setProgress(event.progress);
        appendLogs(event.logs);
        break;
      case "completed":
        render({ ...state, status: "completed", images: event.images, cost: event.cost,
                 error: null });
        feed.stop();
        break;
      case "failed":
        render({ ...state, status: event.status, error: { code: event.code, message: event.message } });
        feed.stop();
        break;
      case "cancelled":
        render({ ...state, status: "cancelled" });
        feed.stop();
        break;
      default:
        break;
    }
  }

  const feed = new window.BreniaJobEvents({
    jobId: state.id,
    onSnapshot: (event) => { render(event.job); if (TERMINAL.has(event.job.status)) feed.stop(); },
    onEvent: apply,
    onConnection: (status) => { $("connection").dataset.state = status; },
  });
  window.breniaJobFeed = feed;
  render(state);
  if (!TERMINAL.has(state.status)) feed.start();
})();
