// Star ratings of images (the image history and run pages): one delegated click
// handler PUTs the score, and the comment, to /api/images/<id>/rating.
// Markup: templates_app/_rating.html — a [data-rate-image] box holding [data-score]
// buttons, a [data-rating-status] live text, a [data-rating-comment] textarea and a
// [data-rating-save] button. The API takes the session with its CSRF token.
(function () {
  "use strict";

  function csrfToken() {
    // base.html puts the token on <body hx-headers>; the cookie is the fallback.
    try {
      var headers = JSON.parse(document.body.getAttribute("hx-headers") || "{}");
      if (headers["X-CSRFToken"]) return headers["X-CSRFToken"];
    } catch (ignored) { /* not JSON: use the cookie */ }
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function show(box, score) {
    box.dataset.current = String(score);
    box.querySelectorAll("[data-score]").forEach(function (button) {
      button.setAttribute("aria-pressed", Number(button.dataset.score) <= score ? "true" : "false");
    });
  }

  function problemText(body) {
    if (body && Array.isArray(body.errors) && body.errors.length) {
      return body.errors.map(function (e) { return e.field + " " + e.problem; }).join("; ");
    }
    return (body && body.message) || "the server said no";
  }

  function currentScore(box) {
    var pressed = box.querySelectorAll('[data-score][aria-pressed="true"]');
    return Number(box.dataset.current || pressed.length || 0);
  }

  function save(box, score) {
    var status = box.querySelector("[data-rating-status]");
    var comment = box.querySelector("[data-rating-comment]");
    var buttons = box.querySelectorAll("button");
    var say = function (text) { if (status) status.textContent = text; };
    if (!score) {
      say("Choose a score first (1 to 5 stars).");
      return;
    }
    buttons.forEach(function (b) { b.disabled = true; });
    say("Saving…");
    fetch(box.dataset.rateUrl, {
      method: "PUT",
      credentials: "same-origin",
      headers: {"Content-Type": "application/json", "Accept": "application/json",
                "X-CSRFToken": csrfToken()},
      body: JSON.stringify({score: score, comment: comment ? comment.value : ""}),
    }).then(function (response) {
      return response.json().catch(function () { return null; }).then(function (body) {
        if (!response.ok) {
          say("Not saved: " + problemText(body) + ".");
          return;
        }
        show(box, body.score);
        say("Rated " + body.score + " of 5" + (body.comment ? ", with your comment." : "."));
      });
    }).catch(function () {
      say("Not saved: the connection failed. Try again.");
    }).finally(function () {
      buttons.forEach(function (b) { b.disabled = false; });
    });
  }

  document.addEventListener("click", function (event) {
    var target = event.target instanceof Element ? event.target : null;
    var box = target && target.closest("[data-rate-image]");
    if (!box) return;
    var star = target.closest("[data-score]");
    if (star && box.contains(star)) {
      save(box, Number(star.dataset.score));
    } else if (target.closest("[data-rating-save]")) {
      save(box, currentScore(box));
    }
  });
})();
