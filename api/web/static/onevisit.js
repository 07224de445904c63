// Small behaviours of the OneVisit pages; no framework, no inline script (the pages' CSP).
(function () {
  "use strict";

  // Copy a feed link to the clipboard.
  document.querySelectorAll("button.copy").forEach(function (button) {
    button.addEventListener("click", function () {
      var input = document.getElementById(button.dataset.copy);
      input.select();
      var done = function () { button.textContent = "Copied"; };
      if (navigator.clipboard) { navigator.clipboard.writeText(input.value).then(done, done); }
      else { document.execCommand("copy"); done(); }
    });
  });

  var printButton = document.getElementById("print-button");
  if (printButton) { printButton.addEventListener("click", function () { window.print(); }); }

  function text(id, value) { var n = document.getElementById(id); if (n) { n.textContent = value; } }
  function pct(v) { return v === null || v === undefined ? "—" : (100 * v).toFixed(1) + "%"; }

  // A job's live progress from its server-sent events: best plan, bound, gap.
  var job = document.getElementById("job");
  if (job && window.EventSource) {
    var source = new EventSource(job.dataset.events);
    source.addEventListener("progress", function (message) {
      var j = JSON.parse(message.data);
      text("job-status", j.status);
      text("job-stage", j.stage);
      text("job-elapsed", Math.round(j.elapsed_seconds) + " of " + Math.round(j.time_limit_seconds));
      text("job-objective", j.objective === null ? "—" : j.objective);
      text("job-bound", j.bound === null ? "—" : j.bound);
      text("job-gap", pct(j.gap));
      text("job-reviews", (j.reviews_booked === null ? "—" : j.reviews_booked) + " of " + j.reviews_total);
      var bar = document.getElementById("job-progress");
      if (bar) { bar.max = j.time_limit_seconds; bar.value = Math.min(j.elapsed_seconds, j.time_limit_seconds); }
    });
    source.addEventListener("end", function (message) {
      source.close();
      var end = JSON.parse(message.data);
      job.dataset.finished = end.status;
      var result = document.getElementById("job-result");
      if (end.plan_id && result) {
        result.textContent = "";
        var a = document.createElement("a");
        a.href = "/plans/" + end.plan_id; a.id = "plan-link"; a.textContent = "Open the plan";
        result.appendChild(a);
        if (job.dataset.basePlan) {
          result.appendChild(document.createTextNode(" · "));
          var d = document.createElement("a");
          d.href = "/plans/" + job.dataset.basePlan + "/diff/" + end.plan_id; d.id = "diff-link";
          d.textContent = "See what changed";
          result.appendChild(d);
        }
      }
      text("job-status", end.status);
      var cancel = document.getElementById("cancel-form");
      if (cancel) { cancel.remove(); }
    });
  }

  // A capacity study's progress, polled (a study reports solves done of all to solve).
  var study = document.getElementById("study");
  if (study && (study.dataset.status === "queued" || study.dataset.status === "running")) {
    var timer = setInterval(function () {
      fetch(study.dataset.statusUrl, {credentials: "same-origin"}).then(function (r) { return r.json(); })
        .then(function (s) {
          text("study-status", s.status);
          text("study-done", s.progress.done);
          text("study-total", s.progress.total);
          var bar = document.getElementById("study-progress");
          if (bar) { bar.max = s.progress.total || 1; bar.value = s.progress.done; }
          if (s.status !== "queued" && s.status !== "running") { clearInterval(timer); window.location.reload(); }
        });
    }, 1500);
  }
})();
