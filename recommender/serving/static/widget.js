/* recommender's Related widget: one <script> tag and a container element.
 *
 *   <div data-recommender-related data-k="5"></div>
 *   <script src="https://recs.example.com/widget.js" async></script>
 *
 * For each container it asks the service (the origin this script came from, or the
 * container's data-endpoint) for the related list of this page (its <link rel="canonical">,
 * else location.href), and renders it as plain, accessible markup the site styles through
 * the recommender-related* classes. Impressions and clicks go to /v1/events. Any failure
 * (service down, no such article, an old browser) leaves the container empty: the page
 * never breaks and nothing is thrown.
 */
(function () {
  "use strict";

  var script = document.currentScript;

  function serviceOrigin(container) {
    var given = container.getAttribute("data-endpoint");
    try {
      return new URL(given || (script && script.src) || "", location.href).origin;
    } catch (e) {
      return null;
    }
  }

  function pageUrl() {
    var canonical = document.querySelector('link[rel="canonical"]');
    return (canonical && canonical.href) || location.href.split("#")[0];
  }

  function safeHref(url) {
    // Only http(s) links and site paths, as the service keeps them.
    if (typeof url !== "string") return null;
    if (/^\/(?!\/)/.test(url)) return url;
    try {
      var parsed = new URL(url, location.href);
      return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
    } catch (e) {
      return null;
    }
  }

  function send(origin, events) {
    try {
      fetch(origin + "/v1/events", {
        method: "POST",
        mode: "cors",
        keepalive: true,
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ events: events })
      }).catch(function () {});
    } catch (e) { /* reporting is best effort */ }
  }

  function event(type, list, item, position) {
    var out = { type: type, article_id: list.id, related_id: item.id, position: position };
    if (list.bucket) out.bucket = list.bucket;
    return out;
  }

  function render(container, origin, list) {
    var items = (list.related || []).filter(function (item) { return safeHref(item.url); });
    if (!items.length) return;
    var section = document.createElement("section");
    section.className = "recommender-related";
    var title = container.getAttribute("data-title") || "Related";
    section.setAttribute("aria-label", title);
    var heading = document.createElement("h2");
    heading.className = "recommender-related__title";
    heading.textContent = title;
    var ol = document.createElement("ol");
    ol.className = "recommender-related__list";
    items.forEach(function (item, index) {
      var li = document.createElement("li");
      li.className = "recommender-related__item";
      var link = document.createElement("a");
      link.className = "recommender-related__link";
      link.href = safeHref(item.url);
      link.textContent = item.title || item.url;
      link.setAttribute("data-recommender-id", item.id);
      link.addEventListener("click", function () {
        send(origin, [event("click", list, item, index + 1)]);
      });
      li.appendChild(link);
      if (item.published_at) {
        var time = document.createElement("time");
        time.className = "recommender-related__date";
        time.dateTime = item.published_at;
        time.textContent = " " + item.published_at.slice(0, 10);
        li.appendChild(time);
      }
      ol.appendChild(li);
    });
    section.appendChild(heading);
    section.appendChild(ol);
    container.textContent = "";
    container.appendChild(section);
    container.setAttribute("data-recommender-state", "shown");
    send(origin, items.map(function (item, index) {
      return event("impression", list, item, index + 1);
    }));
  }

  function fill(container) {
    var origin = serviceOrigin(container);
    if (!origin || !window.fetch) return;
    var k = parseInt(container.getAttribute("data-k") || "5", 10) || 5;
    var query = "?url=" + encodeURIComponent(pageUrl()) + "&k=" + Math.min(Math.max(k, 1), 20);
    fetch(origin + "/v1/related" + query, { mode: "cors" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (list) { if (list) render(container, origin, list); })
      .catch(function () { container.setAttribute("data-recommender-state", "failed"); });
  }

  function start() {
    try {
      var found = document.querySelectorAll("[data-recommender-related]");
      for (var i = 0; i < found.length; i++) fill(found[i]);
    } catch (e) { /* never break the page */ }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
