// Live Stream: ask for batches newer than the ones shown, and put them at the top.
(function () {
  "use strict";
  var list = document.getElementById("live-list");
  var status = document.getElementById("live-status");
  var empty = document.getElementById("live-empty");
  var script = document.currentScript || document.querySelector("script[data-interval]");
  var interval = Number(script && script.dataset.interval) || 2000;
  if (!list) return;

  function feedUrl() {
    var params = new URLSearchParams(window.location.search);
    params.set("after", list.dataset.cursor || "0-0");
    return "/ui/api/live?" + params.toString();
  }

  function poll() {
    fetch(feedUrl(), { credentials: "same-origin", headers: { accept: "application/json" } })
      .then(function (answer) {
        if (answer.status === 401) {
          status.textContent = "Signed out: reload the page to sign in again.";
          return null;
        }
        return answer.ok ? answer.json() : null;
      })
      .then(function (feed) {
        if (!feed) return;
        list.dataset.cursor = feed.cursor;
        if (feed.count > 0) {
          // The server escaped every value in this markup.
          list.insertAdjacentHTML("afterbegin", feed.html);
          if (empty) empty.hidden = true;
          status.textContent = feed.count + " new batch" + (feed.count === 1 ? "" : "es");
        }
      })
      .catch(function () {
        status.textContent = "Cannot reach the server; trying again.";
      })
      .finally(function () {
        window.setTimeout(poll, interval);
      });
  }

  window.setTimeout(poll, interval);
})();
