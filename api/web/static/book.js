// The appointment book: EventCalendar's resource timeline (vendored; MIT), fed by book.json.
// Each block carries data-* attributes naming its appointment, so a test (or a screen reader
// through aria-label) reads the same facts the block shows.
(function () {
  "use strict";
  var el = document.getElementById("book");
  var status = document.getElementById("book-status");
  if (!el) { return; }
  var week = el.dataset.view === "week";

  function label(ev) {
    var p = ev.extendedProps;
    var rows = ev.resourceIds.map(function (id) { return names[id] || id; }).join(" and ");
    return rows + ": " + p.patient_id + ", " + ev.title.split(" · ").slice(1).join(", ") + ", " +
      p.start_local.slice(11, 16) + " to " + p.end_local.slice(11, 16) + ", step " + p.step + " of " + p.steps;
  }

  fetch(el.dataset.source, {credentials: "same-origin", headers: {"Accept": "application/json"}})
    .then(function (response) {
      if (!response.ok) { throw new Error("The book could not be loaded (" + response.status + ")."); }
      return response.json();
    })
    .then(function (data) {
      data.resources.forEach(function (r) { names[r.id] = r.title; });
      EventCalendar.create(el, {
        view: week ? "resourceTimelineWeek" : "resourceTimelineDay",
        date: data.date_from,
        headerToolbar: {start: "title", center: "", end: ""},
        resources: data.resources,
        events: data.events,
        slotMinTime: data.slot_min_time,
        slotMaxTime: data.slot_max_time,
        slotDuration: week ? "01:00" : "00:15",
        slotWidth: week ? 44 : 72,  // px per slot: a 10-minute block still shows its patient id
        firstDay: 1,  // weeks start on Monday, as the page's week does
        height: "auto",
        editable: false,
        selectable: false,
        eventStartEditable: false,
        eventDurationEditable: false,
        displayEventEnd: true,
        locale: "en-GB",
        eventTimeFormat: {hour: "2-digit", minute: "2-digit", hour12: false},
        // The block reads patient, step and reference; the time is the block's position (and in
        // its label). Text nodes only: nothing from the data is parsed as HTML.
        eventContent: function (info) {
          var p = info.event.extendedProps;
          var top = document.createElement("span");
          top.className = "ov-line";
          top.textContent = p.patient_id + (p.reference ? " " + p.reference : "");
          var step = document.createElement("span");
          step.className = "ov-line ov-step";
          step.textContent = info.event.title.split(" · ")[1] || "";
          return {domNodes: [top, step]};
        },
        slotLabelFormat: week ? {hour: "2-digit", hour12: false} : {hour: "2-digit", minute: "2-digit", hour12: false},
        // A block opens its patient's page: the visit's steps and "Why this visit?" (issue 18).
        eventClick: function (info) {
          window.location.assign("/plans/" + encodeURIComponent(el.dataset.planId) + "/patients/" +
            encodeURIComponent(info.event.extendedProps.patient_id));
        },
        eventDidMount: function (info) {
          var p = info.event.extendedProps;
          var node = info.el;
          node.classList.add("ov-appointment");
          node.dataset.appointmentId = info.event.id;
          node.dataset.visitId = p.visit_id;
          node.dataset.patientId = p.patient_id;
          node.dataset.reference = p.reference;
          node.dataset.start = p.start_local;
          node.dataset.end = p.end_local;
          node.dataset.kind = p.kind;
          var row = node.closest("[data-resource-id]");
          node.dataset.row = info.event.resourceIds.join(" ");
          node.setAttribute("role", "img");
          node.setAttribute("aria-label", label(info.event));
          node.title = label(info.event) + (p.reference ? ", booking " + p.reference : "");
          if (row) { node.dataset.rowElement = row.getAttribute("data-resource-id"); }
        }
      });
      tidy();
      new MutationObserver(tidy).observe(el, {childList: true, subtree: true});
      status.textContent = data.events.length + " appointment" + (data.events.length === 1 ? "" : "s") +
        " in " + data.resources.length + " row" + (data.resources.length === 1 ? "" : "s") + ".";
      el.dataset.loaded = "true";
    })
    .catch(function (error) { status.textContent = error.message; el.dataset.loaded = "error"; });

  // EventCalendar marks its grid up as an ARIA table whose rows and cells do not nest as ARIA
  // requires (axe: aria-required-children / -parent), so screen readers would misread it. The
  // grid is drawn as plain groups instead; each block's label names its row, time and step, and
  // the scrolling timeline can take focus so a keyboard can scroll it (WCAG 2.1.1).
  var ROLES = ["table", "rowgroup", "row", "rowheader", "columnheader", "cell", "gridcell", "grid"];
  var TABLE_ARIA = ["aria-colindex", "aria-rowindex", "aria-colcount", "aria-rowcount", "aria-colspan", "aria-rowspan"];
  var names = {};
  function tidy() {
    el.querySelectorAll("[role]").forEach(function (node) {
      if (ROLES.indexOf(node.getAttribute("role")) >= 0) { node.removeAttribute("role"); }
    });
    TABLE_ARIA.forEach(function (name) {
      el.querySelectorAll("[" + name + "]").forEach(function (node) { node.removeAttribute(name); });
    });
    var main = el.querySelector(".ec-main");
    if (main && !main.hasAttribute("tabindex")) {
      main.setAttribute("tabindex", "0");
      main.setAttribute("role", "group");
      main.setAttribute("aria-label", "Timeline: scroll with the arrow keys");
    }
  }

  // Left and right arrows move a day (or a week) unless the user is typing in a field.
  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) { return; }
    if (target && /^(INPUT|SELECT|TEXTAREA|BUTTON)$/.test(target.tagName)) { return; }
    if (target && el.contains(target)) { return; }  // inside the timeline the arrows scroll it
    var link = event.key === "ArrowLeft" ? document.getElementById("previous-day")
      : event.key === "ArrowRight" ? document.getElementById("next-day") : null;
    if (link) { event.preventDefault(); window.location.assign(link.href); }
  });
})();
