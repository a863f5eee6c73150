// The audience builder: shows each criterion's fields for its type, asks the server for
// the estimate of the form as it is (debounced) and shows refusals at their field. The
// form works without this script (its "Update the form" button redraws it).
(function () {
  "use strict";
  var form = document.getElementById("builder");
  if (!form) { return; }
  var timer = null;
  var asked = 0;

  function fieldId(name) { return "f-" + name.replace(/\./g, "-"); }

  function showParts(select) {
    var prefix = select.name.slice(0, -".type".length);
    var node = document.getElementById("node-" + fieldId(prefix));
    if (!node) { return; }
    var kind = select.value;
    node.querySelectorAll(":scope > .parts > [data-for]").forEach(function (part) {
      part.hidden = part.getAttribute("data-for").split(" ").indexOf(kind) < 0;
    });
    var key = document.getElementById(fieldId(prefix + ".key"));
    if (key) { key.setAttribute("list", "dl-" + kind); }
  }

  function clearErrors() {
    form.querySelectorAll(".field-error").forEach(function (span) {
      span.textContent = "";
      span.removeAttribute("role");
    });
    form.querySelectorAll("[aria-invalid]").forEach(function (el) { el.removeAttribute("aria-invalid"); });
  }

  function showError(name, message) {
    var span = document.getElementById("err-" + fieldId(name)) || document.getElementById("err-" + fieldId("c"));
    if (span) {
      span.textContent = message;
      span.setAttribute("role", "alert");
    }
    var input = document.getElementById(fieldId(name));
    if (input) { input.setAttribute("aria-invalid", "true"); }
  }

  function showEstimates(answer) {
    form.querySelectorAll("output.estimate").forEach(function (out) { out.textContent = ""; });
    document.getElementById("est-total").textContent = answer.shown;
    Object.keys(answer.criteria).forEach(function (prefix) {
      var out = document.getElementById("est-" + fieldId(prefix));
      var item = answer.criteria[prefix];
      if (out) { out.textContent = (item.excludes ? "leaves out " : "estimate ") + item.shown; }
    });
  }

  function estimate() {
    var body = new URLSearchParams(new FormData(form));
    var mine = ++asked;
    fetch(form.getAttribute("data-estimate"), {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { "content-type": "application/x-www-form-urlencoded" }
    }).then(function (response) {
      return response.json().then(function (answer) { return { ok: response.ok, answer: answer }; });
    }).then(function (result) {
      if (mine !== asked) { return; }  // a newer question is on its way
      clearErrors();
      if (result.ok) {
        showEstimates(result.answer);
      } else {
        document.getElementById("est-total").textContent = "—";
        showError(result.answer.field || "c", result.answer.error);
      }
    }).catch(function () { /* the next change asks again */ });
  }

  function later() {
    if (timer) { clearTimeout(timer); }
    timer = setTimeout(estimate, 400);
  }

  form.addEventListener("change", function (event) {
    var target = event.target;
    if (target.tagName === "SELECT" && /\.type$/.test(target.name)) { showParts(target); }
    later();
  });
  form.addEventListener("input", later);
  estimate();
})();
