// Progressive enhancement only: every page works without this file.
// - Forms marked data-live re-run their query when a control changes and swap the
//   Related list (#related) in place, without reloading the page; the URL follows along.
// - "/" moves focus to the search box, as on many sites.
(function () {
  "use strict";

  function formRequest(form) {
    var data = new URLSearchParams(new FormData(form));
    if (form.method.toLowerCase() === "get") {
      var url = new URL(form.action, window.location.href);
      url.search = data.toString();
      return { url: url.toString(), init: { method: "GET" }, history: url.toString() };
    }
    return {
      url: form.action,
      init: { method: "POST", body: data, headers: { "Content-Type": "application/x-www-form-urlencoded" } },
      history: null
    };
  }

  function refresh(form) {
    var panel = document.querySelector(".related-panel");
    var current = document.getElementById("related");
    if (!panel || !current) return;
    if (form.method.toLowerCase() === "post" && !form.checkValidity()) return;
    var request = formRequest(form);
    panel.setAttribute("aria-busy", "true");
    fetch(request.url, request.init)
      .then(function (response) { return response.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.querySelector(".related-panel");
        if (!fresh) return;
        // Replace everything after the form (messages and the list), keep the form itself.
        var keep = panel.querySelector("form");
        Array.prototype.slice.call(panel.children).forEach(function (child) {
          if (child !== keep && child.tagName !== "H2") panel.removeChild(child);
        });
        Array.prototype.slice.call(fresh.children).forEach(function (child) {
          if (child.tagName !== "FORM" && child.tagName !== "H2") panel.appendChild(document.importNode(child, true));
        });
        if (request.history) window.history.replaceState(null, "", request.history);
      })
      .catch(function () { form.submit(); })
      .finally(function () { panel.removeAttribute("aria-busy"); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("form[data-live]"), function (form) {
      var timer = null;
      form.addEventListener("change", function (event) {
        // The pasted text itself does not re-run the query; the options do.
        if (event.target && event.target.id === "story") return;
        if (form.method.toLowerCase() === "post" && !document.querySelector("#related ol, #related .empty")) return;
        window.clearTimeout(timer);
        timer = window.setTimeout(function () { refresh(form); }, 150);
      });
    });
    document.addEventListener("keydown", function (event) {
      var search = document.getElementById("q");
      var typing = /^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement && document.activeElement.tagName);
      if (event.key === "/" && search && !typing && !event.ctrlKey && !event.metaKey && !event.altKey) {
        event.preventDefault();
        search.focus();
      }
    });
  });
})();
