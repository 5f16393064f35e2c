// The wizard's reward step: a filter box over a long <select> (31 rewards are a lot to scroll)
// and a version <select> that shows only the chosen reward's versions. Without JavaScript the
// filter stays hidden and every version group shows, labelled by its reward: nothing breaks.
(function () {
  "use strict";

  function filterOptions(input) {
    var select = document.getElementById(input.getAttribute("data-filter-select"));
    var count = document.getElementById(input.id + "-count");
    if (!select) return;
    var words = input.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    var shown = 0;
    var total = 0;
    Array.prototype.forEach.call(select.options, function (option) {
      if (!option.value) return; // the empty "—" choice always stays
      total += 1;
      var text = option.text.toLowerCase();
      var match = words.every(function (word) { return text.indexOf(word) !== -1; });
      option.hidden = !match;
      if (match) shown += 1;
    });
    if (count) count.textContent = words.length ? shown + " of " + total + " match" : "";
  }

  function showVersionsOf(versions) {
    var reward = document.getElementById(versions.getAttribute("data-versions-of"));
    if (!reward) return;
    Array.prototype.forEach.call(versions.querySelectorAll("optgroup"), function (group) {
      var mine = group.getAttribute("data-reward") === reward.value;
      group.hidden = !mine;
      group.disabled = !mine;
    });
    var chosen = versions.options[versions.selectedIndex];
    if (chosen && chosen.parentElement.disabled) versions.value = "";
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("input[data-filter-select]").forEach(function (input) {
      input.hidden = false;
      input.addEventListener("input", function () { filterOptions(input); });
    });
    document.querySelectorAll("select[data-versions-of]").forEach(function (versions) {
      var reward = document.getElementById(versions.getAttribute("data-versions-of"));
      if (reward) reward.addEventListener("change", function () { showVersionsOf(versions); });
      showVersionsOf(versions);
    });
  });
})();
