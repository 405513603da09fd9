"""Drives persona's admin console in headless Chromium (run by scripts/console-browser.sh).

    console_browser.py SERVER ADMIN_EMAIL ADMIN_PASSWORD SCREENSHOT_DIR

Each check is what an admin does in the browser, verified where it matters through the API
itself (a disabled user's token is refused; the switched script version is the one served).
Any failure raises, so the exit status is non-zero.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import (
    NoAlertPresentException,
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

SERVER, ADMIN, ADMIN_PASSWORD, SHOTS = sys.argv[1:5]
USER, USER_PASSWORD = "ana@example.com", "ana-password-1"
CHECKS = []


def api(method, path, body=None, token=None):
    """(status, JSON body) of one API call."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(SERVER + "/api/v1" + path, data=data, method=method)
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read()
            return response.status, json.loads(text) if text else None
    except urllib.error.HTTPError as error:
        text = error.read()
        return error.code, json.loads(text) if text else None


def check(name, condition, detail=""):
    if not condition:
        raise AssertionError(f"{name}: {detail}")
    CHECKS.append(name)
    print(f"  ok  {name}")


def shot(driver, name):
    path = os.path.join(SHOTS, name)
    driver.save_screenshot(path)
    print(f"  screenshot {path}")


def wait(driver, condition, what, seconds=10):
    # A view that re-renders between finding an element and reading it leaves a stale
    # reference: not yet, so look again (it made the crisis page's check flaky).
    try:
        return WebDriverWait(
            driver, seconds, ignored_exceptions=(StaleElementReferenceException,)
        ).until(lambda d: condition(d))
    except TimeoutException:
        shot(driver, "failure.png")
        raise AssertionError(f"timed out waiting for {what}") from None


def text_of(driver, element_id):
    elements = driver.find_elements(By.ID, element_id)
    return elements[0].text if elements else ""


def accept_confirm(driver):
    try:
        WebDriverWait(driver, 5).until(lambda d: d.switch_to.alert)
        driver.switch_to.alert.accept()
    except (TimeoutException, NoAlertPresentException):
        raise AssertionError("no confirmation was asked") from None


def go(driver, hash_route, heading):
    """Follows the nav link of `hash_route` with the keyboard (focus, Enter)."""
    link = driver.find_element(By.CSS_SELECTOR, f'nav a[href="{hash_route}"]')
    link.send_keys(Keys.ENTER)
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#view h1")
         and d.find_element(By.CSS_SELECTOR, "#view h1").text == heading, f"the {heading} page")
    wait(driver, lambda d: text_of(d, "status") == "", f"the {heading} page to load")


def main():
    # A user to manage, with a session of their own.
    status, _ = api("POST", "/auth/register", {"email": USER, "password": USER_PASSWORD})
    check("a user registers", status == 201, status)
    status, ana = api("POST", "/auth/login", {"email": USER, "password": USER_PASSWORD})
    ana_token = ana["accessToken"]
    check("the user's token works", api("GET", "/auth/me", token=ana_token)[0] == 200)
    status, admin = api("POST", "/auth/login", {"email": ADMIN, "password": ADMIN_PASSWORD})
    admin_token = admin["accessToken"]
    check("the administrator signs in through the API", status == 200 and admin["user"]["role"] == "admin")
    # Some AI use for the overview and the chart (usage rows are written just after answers).
    for _ in range(2):
        status, _ = api("POST", "/ai/chat", {"messages": [{"role": "user", "content": "hi"}]}, token=ana_token)
        check("the user chats through the proxy", status == 200, status)
    for _ in range(100):
        if api("GET", "/admin/overview", token=admin_token)[1]["aiToday"]["requests"] >= 2:
            break
        time.sleep(0.05)

    options = webdriver.ChromeOptions()
    options.binary_location = os.environ["CHROMIUM"]
    for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,900", "--no-first-run", "--lang=en-US"]:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(os.environ["CHROMEDRIVER"]), options=options)
    try:
        run(driver, ana_token, admin_token)
        logs = driver.get_log("browser")
        violations = [e["message"] for e in logs if "Content Security Policy" in e["message"]]
        check("no CSP violation in the browser log", not violations, violations)
        errors = [e["message"] for e in logs if e["level"] == "SEVERE"
                  and "Failed to load resource" not in e["message"]]
        check("no script error in the browser log", not errors, errors)
    finally:
        driver.quit()
    print(f"console_browser: {len(CHECKS)} checks passed")


def run(driver, ana_token, admin_token):
    driver.get(SERVER + "/admin")
    wait(driver, lambda d: d.find_element(By.ID, "email").is_displayed(), "the sign-in form")
    check("the sign-in form has the focus", driver.switch_to.active_element.get_attribute("id") == "email")
    shot(driver, "01-sign-in.png")

    # A user's account is not let in.
    email = driver.find_element(By.ID, "email")
    email.send_keys(USER)
    driver.find_element(By.ID, "password").send_keys(USER_PASSWORD + Keys.ENTER)
    wait(driver, lambda d: "not an administrator" in text_of(d, "signin-error"), "the refusal of a user")
    check("a user's account is refused by the console", driver.find_element(By.ID, "nav").is_displayed() is False)

    # Sign in with the keyboard only.
    email.clear()
    email.send_keys(ADMIN)
    password = driver.find_element(By.ID, "password")
    password.clear()
    password.send_keys(ADMIN_PASSWORD + Keys.ENTER)
    wait(driver, lambda d: text_of(d, "ov-version") != "", "the overview")
    with urllib.request.urlopen(SERVER + "/health", timeout=10) as response:
        health = json.loads(response.read())
    check("the overview shows the server's version", text_of(driver, "ov-version") == health["version"],
          text_of(driver, "ov-version"))
    check("the overview shows the database as ok", text_of(driver, "ov-database") == "ok")
    check("the overview counts the accounts", text_of(driver, "ov-users").startswith("2"),
          text_of(driver, "ov-users"))
    check("the overview shows the AI upstream as ok", text_of(driver, "ov-ai").startswith("ok"),
          text_of(driver, "ov-ai"))
    check("the overview counts today's AI calls", "2 calls" in text_of(driver, "ov-ai-today"),
          text_of(driver, "ov-ai-today"))
    check("the page heading has the focus after navigation",
          driver.switch_to.active_element.tag_name == "h1")
    storage = driver.execute_script(
        "return [localStorage.length, sessionStorage.length, document.cookie]")
    check("nothing is kept in the browser's storage", storage == [0, 0, ""], storage)
    shot(driver, "02-overview.png")

    # Disable the user, and see the API refuse their token at once.
    go(driver, "#/users", "Users")
    selector = f'button[data-action="disable"][data-email="{USER}"]'
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, selector), "the user's row")
    driver.find_element(By.CSS_SELECTOR, selector).click()
    accept_confirm(driver)
    enable = f'button[data-action="enable"][data-email="{USER}"]'
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, enable), "the user shown as disabled")
    status, body = api("GET", "/auth/me", token=ana_token)
    check("the disabled user's token is refused by the API",
          status == 403 and body["error"]["code"] == "account_disabled", (status, body))
    status, _ = api("POST", "/auth/login", {"email": USER, "password": USER_PASSWORD})
    check("the disabled user cannot sign in", status == 403, status)
    shot(driver, "03-users.png")

    # Search narrows the list.
    search = driver.find_element(By.NAME, "q")
    search.send_keys("admin" + Keys.ENTER)
    wait(driver, lambda d: "q=admin" in d.current_url and not d.find_elements(By.CSS_SELECTOR, enable),
         "the search result")
    check("searching shows only matching accounts",
          ADMIN in driver.find_element(By.ID, "user-list").text)

    # Create a script version in the form, then switch to it.
    go(driver, "#/scripts", "Scripts")
    driver.find_element(By.ID, "ns-name").send_keys("mood_analysis")
    driver.find_element(By.ID, "ns-version").send_keys("9.9.9")
    driver.find_element(By.ID, "ns-description").send_keys("made in the browser test")
    content = driver.find_element(By.ID, "ns-content")
    content.clear()
    content.send_keys('{"system": "You read moods.", "template": "{{text}}"}')
    driver.find_element(By.CSS_SELECTOR, "#new-script button[type=submit]").click()
    activate = 'button[data-script="mood_analysis"][data-version="9.9.9"]'
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, activate), "the new version's row")
    status, served = api("GET", "/ai/scripts/mood_analysis", token=admin_token)
    check("a new version is not active until switched", served["version"] != "9.9.9", served["version"])
    driver.find_element(By.CSS_SELECTOR, activate).click()
    wait(driver, lambda d: "is now active" in text_of(d, "status"), "the switch")
    status, served = api("GET", "/ai/scripts/mood_analysis", token=admin_token)
    check("the switched version is the one the API serves", status == 200 and served["version"] == "9.9.9",
          served)
    shot(driver, "04-scripts.png")

    # The chart pages draw with SVG, and show no text of any message.
    go(driver, "#/usage", "AI usage")
    check("the usage page draws today's tokens as a bar",
          driver.find_elements(By.CSS_SELECTOR, "#view figure.chart svg rect"))
    check("the usage page lists the user's calls", USER in driver.find_element(By.ID, "view").text)
    shot(driver, "05-usage.png")
    api("POST", "/auth/register", {"email": "cleo@example.com", "password": "cleo-password-1"})
    status, cleo = api("POST", "/auth/login", {"email": "cleo@example.com", "password": "cleo-password-1"})
    secret_text = "i am going to jump off the bridge tonight"
    api("POST", "/crisis/check", {"text": secret_text}, token=cleo["accessToken"])
    go(driver, "#/crisis", "Crisis")
    page = driver.find_element(By.ID, "view").text
    check("the crisis page counts today's event", "high" in page and "check" in page, page[:300])
    check("the crisis page shows no message text", "bridge" not in driver.page_source)
    shot(driver, "06-crisis.png")

    # Feature a public conversation.
    status, conv = api("POST", "/conversations", {
        "title": "How I plan my week", "visibility": "public", "category": "work",
        "messages": [{"role": "user", "content": "help me plan"}, {"role": "assistant", "content": "sure"}],
    }, token=cleo["accessToken"])
    check("a public conversation is saved", status == 201, (status, conv))
    go(driver, "#/conversations", "Conversations")
    toggle = wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, 'button[aria-pressed="false"]'),
                  "the conversation's Feature button")[0]
    toggle.click()
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, 'button[aria-pressed="true"]'), "featured")
    status, featured = api("GET", "/conversations/featured")
    check("the featured conversation is listed by the API",
          any(c["id"] == conv["id"] for c in featured["items"]), featured)
    shot(driver, "07-conversations.png")

    # Keyboard: from the header, Tab reaches the first section link, and Shift+Tab the skip
    # link before it; Enter on a link opens its page with the heading focused (see `go`).
    driver.find_element(By.CSS_SELECTOR, ".brand").click()
    driver.switch_to.active_element.send_keys(Keys.TAB)
    link = driver.switch_to.active_element
    check("Tab from the header reaches the first section link",
          (link.get_attribute("href") or "").endswith("#/overview"), link.get_attribute("outerHTML"))
    link.send_keys(Keys.SHIFT, Keys.TAB)
    skip = driver.switch_to.active_element
    check("Shift+Tab reaches the skip link", skip.get_attribute("class") == "skip",
          skip.get_attribute("outerHTML"))

    # A phone-width screen: nothing wider than the screen but the tables' own scroll areas.
    driver.set_window_size(390, 844)
    go(driver, "#/overview", "Overview")
    overflow = driver.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
    check("the overview fits a 390 px screen", overflow <= 0, overflow)
    shot(driver, "08-phone-overview.png")
    go(driver, "#/users", "Users")
    overflow = driver.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
    check("the users page fits a 390 px screen", overflow <= 0, overflow)
    shot(driver, "09-phone-users.png")
    driver.set_window_size(1280, 900)

    # A session ended elsewhere (or expired) sends the console back to sign-in.
    api("POST", "/auth/logout-all", token=admin_token)
    go_back = driver.find_element(By.CSS_SELECTOR, 'nav a[href="#/overview"]')
    go_back.send_keys(Keys.ENTER)
    wait(driver, lambda d: d.find_element(By.ID, "signin").is_displayed(), "the sign-in form again")
    check("an ended session returns to the sign-in form",
          "sign in again" in text_of(driver, "signin-error"), text_of(driver, "signin-error"))
    shot(driver, "10-session-ended.png")

    # Sign in again, then sign out: the console's session ends on the server too.
    driver.find_element(By.ID, "email").clear()
    driver.find_element(By.ID, "email").send_keys(ADMIN)
    driver.find_element(By.ID, "password").send_keys(ADMIN_PASSWORD + Keys.ENTER)
    wait(driver, lambda d: text_of(d, "ov-version") != "", "the overview after signing in again")
    status, again = api("POST", "/auth/login", {"email": ADMIN, "password": ADMIN_PASSWORD})
    status, sessions = api("GET", "/auth/sessions", token=again["accessToken"])
    console_sessions = [s for s in sessions["items"] if s.get("deviceName") == "admin console"]
    check("the console has a session of its own", len(console_sessions) == 1, sessions)
    driver.find_element(By.ID, "signout").click()
    wait(driver, lambda d: d.find_element(By.ID, "signin").is_displayed(), "the sign-in form after sign-out")
    status, sessions = api("GET", "/auth/sessions", token=again["accessToken"])
    check("signing out ends the console's session",
          not [s for s in sessions["items"] if s.get("deviceName") == "admin console"], sessions)


if __name__ == "__main__":
    main()
