// A/B test form: the control's share follows the variations' percentages as they are
// typed (the server computes it again on every answer).
(function () {
  "use strict";
  var form = document.getElementById("abtest-form");
  var share = document.getElementById("control-share");
  if (!form || !share) return;

  function update() {
    var total = 0;
    form.querySelectorAll("input.share").forEach(function (input) {
      var text = input.value.trim();
      if (/^\d+$/.test(text)) total += Number(text);
    });
    share.textContent = 100 - total + "%";
    share.classList.toggle("over", total > 100);
  }

  form.addEventListener("input", update);
  update();
})();
