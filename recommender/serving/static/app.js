// Progressive enhancement only: every page works without this file.
// - Forms marked data-live re-run their query when an option changes and swap the
//   results (#related) in place, without reloading the page; the address follows along
//   for GET forms, and a status line tells screen readers the list changed.
// - "/" moves focus to the title search, as on many sites.
(function () {
  "use strict";

  function request(form) {
    var data = new URLSearchParams(new FormData(form));
    if (form.method.toLowerCase() === "get") {
      var url = new URL(form.action, window.location.href);
      url.search = data.toString();
      return { url: url.toString(), init: { method: "GET" }, address: url.toString() };
    }
    return {
      url: form.action,
      init: {
        method: "POST",
        body: data,
        headers: { "Content-Type": "application/x-www-form-urlencoded" }
      },
      address: null
    };
  }

  function refresh(form) {
    var current = document.getElementById("related");
    var status = document.getElementById("live-status");
    if (!current) return;
    // A POST form with an empty story has nothing to ask yet.
    if (form.method.toLowerCase() === "post" && !form.checkValidity()) return;
    var req = request(form);
    current.setAttribute("aria-busy", "true");
    fetch(req.url, req.init)
      .then(function (response) { return response.text(); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("related");
        if (!fresh) throw new Error("no #related in the response");
        current.innerHTML = fresh.innerHTML;
        if (req.address) window.history.replaceState(null, "", req.address);
        if (status) {
          var n = current.querySelectorAll("ol.related > li").length;
          status.textContent = "Related list updated: " + n + (n === 1 ? " article." : " articles.");
        }
      })
      .catch(function () { form.submit(); })
      .finally(function () { current.removeAttribute("aria-busy"); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("form[data-live]"), function (form) {
      var timer = null;
      form.addEventListener("change", function (event) {
        // Editing the pasted story itself does not re-run the query; the options do.
        if (event.target && event.target.id === "story") return;
        window.clearTimeout(timer);
        timer = window.setTimeout(function () { refresh(form); }, 150);
      });
    });
    document.addEventListener("keydown", function (event) {
      var search = document.getElementById("q");
      var active = document.activeElement;
      var typing = active && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName);
      if (event.key === "/" && search && !typing && !event.ctrlKey && !event.metaKey && !event.altKey) {
        event.preventDefault();
        search.focus();
      }
    });
  });
})();
