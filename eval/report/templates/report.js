(function () {
  "use strict";
  var form = document.getElementById("filters");
  var cards = Array.prototype.slice.call(document.querySelectorAll("#cards .card"));
  var count = document.getElementById("filter-count");
  var keys = ["run", "result", "refusal", "stage"];
  function val(name) { var el = form.elements[name]; return el ? el.value : ""; }
  function apply() {
    var want = {}, text = val("q").trim().toLowerCase(), shown = 0;
    keys.forEach(function (k) { want[k] = val(k); });
    cards.forEach(function (card) {
      var ok = keys.every(function (k) {
        if (!want[k]) { return true; }
        return (" " + (card.dataset[k] || "") + " ").indexOf(" " + want[k] + " ") !== -1;
      });
      if (ok && text) { ok = card.textContent.toLowerCase().indexOf(text) !== -1; }
      card.hidden = !ok;
      if (ok) { shown += 1; }
    });
    count.textContent = "showing " + shown + " of " + cards.length + " browsable records";
    document.body.dataset.visible = String(shown);
  }
  function fromHash() {
    var params = new URLSearchParams(window.location.hash.slice(1));
    params.forEach(function (value, key) {
      var el = form.elements[key];
      if (el) { el.value = value; }
    });
  }
  form.addEventListener("input", apply);
  form.addEventListener("change", apply);
  form.addEventListener("submit", function (e) { e.preventDefault(); });
  window.addEventListener("hashchange", function () { fromHash(); apply(); });
  window.addEventListener("load", function () {
    var plots = document.querySelectorAll("img.plot"), loaded = 0;
    plots.forEach(function (img) { if (img.complete && img.naturalWidth > 0) { loaded += 1; } });
    document.body.dataset.plots = loaded + "/" + plots.length;
  });
  fromHash();
  apply();
  document.body.dataset.ready = "1";
})();
