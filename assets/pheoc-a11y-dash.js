/* Repairs to the markup of Dash 4's own components, which axe-core (tests/test_axe_browser.py) finds wrong
 * for screen readers and keyboards; pheoc's components cannot pass ARIA attributes to them.
 *
 * - RadioItems and Checklist draw native radio buttons and check boxes inside labels, then call the list a
 *   "listbox" of "option"s: an option may not hold a focusable control, and a listbox needs a name. The
 *   native controls, named by their labels, are what assistive technology should see: the ARIA roles go.
 * - Dropdown puts an invisible input, hidden from screen readers, first in the tab order; on focus it hands
 *   focus to the dropdown's button. Hidden yet focusable, it is a silent tab stop: it is given the button's
 *   name instead of being hidden, so the one moment it has focus says what it opens.
 * - DatePickerSingle puts popup attributes (aria-haspopup, aria-expanded) on a plain wrapper <div> that has
 *   no role allowing them; its input, named "Select Date", opens the calendar: the wrapper's attributes go.
 *
 * Dash redraws these components when their options change, so the repair runs after every change of the page.
 */
(function () {
  "use strict";
  var WRAPPER_ATTRS = ["aria-haspopup", "aria-expanded", "aria-disabled", "aria-labelledby", "type"];

  function repairOptionLists(root) {
    root.querySelectorAll(".dash-radioitems[role], .dash-checklist[role]").forEach(function (list) {
      list.removeAttribute("role");
      list.querySelectorAll("label[role=option]").forEach(function (label) {
        label.removeAttribute("role");
        label.removeAttribute("aria-selected");
      });
    });
  }

  function repairDropdowns(root) {
    root.querySelectorAll("input.dash-dropdown-focus-target[aria-hidden]").forEach(function (proxy) {
      var button = proxy.nextElementSibling;
      proxy.removeAttribute("aria-hidden");
      if (button && button.getAttribute("aria-labelledby")) {
        proxy.setAttribute("aria-labelledby", button.getAttribute("aria-labelledby"));
      } else {
        proxy.setAttribute("aria-label", "open the list");
      }
    });
  }

  function repairDatePickers(root) {
    root.querySelectorAll(".dash-datepicker-input-wrapper[aria-haspopup], .dash-datepicker-input-wrapper[aria-expanded]")
      .forEach(function (wrapper) {
        WRAPPER_ATTRS.forEach(function (a) { wrapper.removeAttribute(a); });
      });
  }

  function repair() {
    repairOptionLists(document);
    repairDropdowns(document);
    repairDatePickers(document);
  }
  var pending = false;
  function soon() {
    if (pending) { return; }
    pending = true;
    window.requestAnimationFrame(function () { pending = false; repair(); });
  }
  new MutationObserver(soon).observe(document.documentElement, {
    childList: true, subtree: true, attributes: true,
    attributeFilter: ["role", "aria-hidden", "aria-expanded", "aria-haspopup"]});
  repair();
})();
