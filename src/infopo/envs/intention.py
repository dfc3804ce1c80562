"""Intention: clarify a vague request by asking about its hidden missing details (spec section 8).

Each turn earns 1.0 / 0.7 / 0.4 for the highest importance (3 / 2 / 1) among the details the question newly
covers, minus 0.2 for every further detail covered by the same question (floored at 0); the episode ends
when every detail is covered or after `max_turns`.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from infopo.envs.actions import Action, format_help, parse_action
from infopo.envs.base import ENVIRONMENTS, Environment, StepResult, Task
from infopo.envs.data import read_records
from infopo.envs.llm import (
    JUDGE_PROMPT,
    USER_SIMULATOR_PROMPT,
    LLMConfig,
    SimulatorUnavailable,
    failed_step,
    simulator_client,
)
from infopo.envs.semantic import SemanticMatcher

IMPORTANCE_REWARD = {3: 1.0, 2: 0.7, 1: 0.4}
EXTRA_DETAIL_PENALTY = 0.2
COVER_THRESHOLDS = {"embedding": 0.55, "lexical": 0.5}
CHOICES = ("action",)

SYSTEM_PROMPT = (
    "You are an assistant who has been given a vague request. Some details needed to carry it out are "
    "missing. Ask the user clarifying questions, one at a time, until you know every missing detail; "
    "ask about the most important details first. The number of turns is limited.\n\n" + format_help(CHOICES)
)

# Generator vocabulary: category -> (request templates, fillers, missing details as
# (description, importance, inquiry, three possible answers)).
_Detail = tuple[str, int, str, tuple[str, str, str]]
_DOMAINS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[_Detail, ...]]] = {
    "Travel Planning": (
        (
            "I'd like to plan a trip to {x}.",
            "Put together an itinerary for {x}.",
            "Help me book a holiday in {x}.",
        ),
        (
            "Lisbon",
            "Kyoto",
            "Cape Town",
            "Vancouver",
            "Marrakech",
            "Reykjavik",
            "Buenos Aires",
            "Hanoi",
            "Edinburgh",
            "Istanbul",
        ),
        (
            (
                "Travel dates",
                3,
                "When are you planning to travel?",
                ("early April", "mid July", "late October"),
            ),
            (
                "Trip budget",
                3,
                "What budget do you have for the trip?",
                ("under 1000 dollars", "about 2500 dollars", "no fixed limit"),
            ),
            (
                "Number of travellers",
                2,
                "How many people are travelling?",
                ("just me", "two adults", "a family of four"),
            ),
            (
                "Accommodation type",
                2,
                "What kind of place would you like to stay in?",
                ("a boutique hotel", "a hostel", "a rented apartment"),
            ),
            (
                "Interests and activities",
                2,
                "Which activities interest you most on this trip?",
                ("museums and history", "food and markets", "hiking and nature"),
            ),
            (
                "Local transport",
                1,
                "How would you like to get around once you are there?",
                ("public transport", "a rental car", "walking and cycling"),
            ),
        ),
    ),
    "Cooking & Recipes": (
        (
            "Suggest a recipe using {x}.",
            "I want to cook something with {x} tonight.",
            "Plan a weekly menu built around {x}.",
        ),
        ("chicken", "lentils", "salmon", "tofu", "pasta", "rice", "mushrooms", "eggs", "beef", "chickpeas"),
        (
            (
                "Dietary restrictions",
                3,
                "Do you have any dietary restrictions or allergies?",
                ("gluten-free", "no nuts", "none at all"),
            ),
            (
                "Number of servings",
                2,
                "How many people are you cooking for?",
                ("one person", "two people", "six people"),
            ),
            (
                "Available cooking time",
                2,
                "How much time can you spend cooking?",
                ("20 minutes", "about an hour", "a whole afternoon"),
            ),
            (
                "Cooking skill level",
                2,
                "How experienced are you in the kitchen?",
                ("a beginner", "a confident home cook", "a trained chef"),
            ),
            (
                "Preferred cuisine",
                1,
                "Which cuisine or flavour style do you prefer?",
                ("Italian", "Indian", "Mexican"),
            ),
            (
                "Kitchen equipment",
                1,
                "What kitchen equipment do you have available?",
                ("only a stovetop", "an oven and a blender", "a pressure cooker"),
            ),
        ),
    ),
    "Software Development": (
        (
            "Write a script that processes {x}.",
            "Build me a small tool to manage {x}.",
            "Help me write code to analyse {x}.",
        ),
        (
            "log files",
            "CSV reports",
            "invoices",
            "sensor readings",
            "email attachments",
            "photos",
            "customer records",
            "chat transcripts",
            "server metrics",
            "survey responses",
        ),
        (
            (
                "Programming language",
                3,
                "Which programming language should the code use?",
                ("Python", "JavaScript", "Go"),
            ),
            (
                "Input source and format",
                3,
                "Where does the input come from and in what format?",
                ("a local folder of files", "a REST API returning JSON", "a PostgreSQL table"),
            ),
            (
                "Output format",
                2,
                "What should the output look like?",
                ("a summary table in the terminal", "a JSON file", "an HTML report"),
            ),
            (
                "Operating environment",
                2,
                "On which operating system or platform will it run?",
                ("Linux servers", "Windows laptops", "a Docker container"),
            ),
            (
                "Data volume",
                1,
                "Roughly how much data will it handle?",
                ("a few megabytes", "several gigabytes", "millions of records daily"),
            ),
            (
                "Error handling",
                1,
                "How should the code deal with bad or missing input?",
                ("skip and log it", "stop with an error", "send an alert email"),
            ),
        ),
    ),
    "Health & Fitness": (
        (
            "Create a workout plan focused on {x}.",
            "Help me get better at {x}.",
            "Design a training routine for {x}.",
        ),
        (
            "running",
            "strength",
            "flexibility",
            "swimming",
            "cycling",
            "weight loss",
            "core stability",
            "endurance",
            "posture",
            "climbing",
        ),
        (
            (
                "Current fitness level",
                3,
                "How would you describe your current fitness level?",
                ("just starting out", "moderately active", "very fit"),
            ),
            (
                "Injuries or health conditions",
                3,
                "Do you have any injuries or health conditions I should know about?",
                ("a bad knee", "lower back pain", "no issues"),
            ),
            (
                "Training days per week",
                2,
                "How many days a week can you train?",
                ("two days", "four days", "every day"),
            ),
            (
                "Available equipment",
                2,
                "What equipment do you have access to?",
                ("no equipment", "a pair of dumbbells", "a full gym"),
            ),
            (
                "Session length",
                1,
                "How long can each session be?",
                ("20 minutes", "45 minutes", "90 minutes"),
            ),
            (
                "Goal timeline",
                1,
                "By when do you want to reach your goal?",
                ("in one month", "in three months", "within a year"),
            ),
        ),
    ),
    "Event Planning": (
        ("Organise a {x} for me.", "Help me plan a {x}.", "I need ideas for a {x}."),
        (
            "birthday party",
            "team offsite",
            "wedding reception",
            "baby shower",
            "retirement dinner",
            "charity gala",
            "book club evening",
            "family reunion",
            "graduation party",
            "product launch",
        ),
        (
            (
                "Event date",
                3,
                "On what date will the event take place?",
                ("next Saturday", "the 14th of June", "sometime in December"),
            ),
            (
                "Number of guests",
                3,
                "How many guests are you expecting?",
                ("about ten", "around fifty", "over two hundred"),
            ),
            (
                "Event budget",
                2,
                "What is your budget for the event?",
                ("500 dollars", "5000 dollars", "20000 dollars"),
            ),
            (
                "Venue type",
                2,
                "What kind of venue do you have in mind?",
                ("at home", "a rented hall", "outdoors in a park"),
            ),
            (
                "Theme or style",
                1,
                "Is there a theme or style you want?",
                ("casual and relaxed", "formal black tie", "a 1920s theme"),
            ),
            (
                "Catering",
                1,
                "What kind of food and drinks should be served?",
                ("a buffet", "a seated three-course dinner", "snacks and cocktails"),
            ),
        ),
    ),
    "Shopping Advice": (
        ("Recommend a {x} for me.", "Which {x} should I buy?", "Find me a good {x}."),
        (
            "laptop",
            "camera",
            "bicycle",
            "phone",
            "pair of headphones",
            "mattress",
            "coffee machine",
            "backpack",
            "tablet",
            "pair of running shoes",
        ),
        (
            (
                "Price range",
                3,
                "How much are you willing to spend?",
                ("under 200 dollars", "around 600 dollars", "over 1500 dollars"),
            ),
            (
                "Main use",
                3,
                "What will you mainly use it for?",
                ("daily commuting", "professional work", "travel"),
            ),
            (
                "Size and portability",
                2,
                "How important are size and weight to you?",
                ("it must be very light", "size does not matter", "compact but sturdy"),
            ),
            (
                "Must-have features",
                2,
                "Are there any features it must have?",
                ("long battery life", "water resistance", "noise cancelling"),
            ),
            (
                "Brand preference",
                1,
                "Do you prefer any particular brand?",
                ("no preference", "a well-known brand", "an independent maker"),
            ),
            (
                "Delivery timeframe",
                1,
                "How soon do you need it?",
                ("by tomorrow", "within two weeks", "no rush"),
            ),
        ),
    ),
    "Writing Help": (
        ("Write a {x} for me.", "Draft a {x}.", "Help me put together a {x}."),
        (
            "cover letter",
            "blog post",
            "wedding speech",
            "product description",
            "newsletter",
            "short story",
            "press release",
            "apology email",
            "grant proposal",
            "professional profile summary",
        ),
        (
            (
                "Target audience",
                3,
                "Who is the intended audience?",
                ("hiring managers", "close friends and family", "industry experts"),
            ),
            (
                "Subject matter",
                3,
                "What specific subject or occasion is it about?",
                ("a data analyst role", "our tenth anniversary", "a new recycling app"),
            ),
            ("Tone", 2, "What tone should it have?", ("formal", "warm and funny", "persuasive")),
            ("Length", 2, "How long should it be?", ("about 150 words", "one page", "around 1500 words")),
            (
                "Key points to include",
                2,
                "Are there key points it must mention?",
                ("my leadership experience", "a personal anecdote", "the launch date"),
            ),
            ("Deadline", 1, "When do you need it by?", ("tonight", "end of the week", "next month")),
        ),
    ),
    "Learning & Education": (
        ("Teach me {x}.", "Make a study plan for learning {x}.", "Find resources for learning {x}."),
        (
            "Spanish",
            "calculus",
            "guitar",
            "machine learning",
            "photography",
            "chess",
            "statistics",
            "piano",
            "Japanese",
            "public speaking",
        ),
        (
            (
                "Current level",
                3,
                "What is your current level in this subject?",
                ("complete beginner", "intermediate", "advanced"),
            ),
            (
                "Learning goal",
                3,
                "What do you want to be able to do in the end?",
                ("pass an exam", "use it at work", "enjoy it as a hobby"),
            ),
            (
                "Weekly study time",
                2,
                "How many hours a week can you study?",
                ("two hours", "five hours", "ten hours"),
            ),
            (
                "Preferred learning style",
                2,
                "How do you prefer to learn?",
                ("video lessons", "books and exercises", "a private tutor"),
            ),
            (
                "Materials budget",
                1,
                "How much can you spend on courses or materials?",
                ("nothing, free resources only", "up to 100 dollars", "whatever it takes"),
            ),
            (
                "Target date",
                1,
                "Is there a date you are working towards?",
                ("in six weeks", "by the end of the year", "no deadline"),
            ),
        ),
    ),
    "Personal Finance": (
        ("Help me make a plan for {x}.", "Give me advice on {x}.", "How should I approach {x}?"),
        (
            "saving for a house",
            "paying off debt",
            "retirement savings",
            "an emergency fund",
            "investing in shares",
            "a monthly budget",
            "buying a car",
            "saving for college",
            "cutting my expenses",
            "starting a side business",
        ),
        (
            (
                "Monthly income",
                3,
                "What is your monthly income after tax?",
                ("2500 dollars", "4000 dollars", "9000 dollars"),
            ),
            (
                "Time horizon",
                3,
                "Over what time period are you planning?",
                ("one year", "five years", "twenty years"),
            ),
            (
                "Risk tolerance",
                2,
                "How much risk are you comfortable taking?",
                ("very little", "a moderate amount", "a lot"),
            ),
            (
                "Existing savings",
                2,
                "How much have you saved so far?",
                ("nothing yet", "about 10000 dollars", "over 50000 dollars"),
            ),
            (
                "Country of residence",
                1,
                "Which country do you live in, for tax rules?",
                ("the United States", "Germany", "Australia"),
            ),
            (
                "Dependents",
                1,
                "Does anyone depend on you financially?",
                ("no one", "a partner", "two children"),
            ),
        ),
    ),
    "Home & Garden": (
        ("Help me redesign my {x}.", "Give me a plan to fix up the {x}.", "Suggest improvements for my {x}."),
        (
            "kitchen",
            "garden",
            "living room",
            "home office",
            "bathroom",
            "balcony",
            "bedroom",
            "garage",
            "patio",
            "basement",
        ),
        (
            (
                "Renovation budget",
                3,
                "What budget do you have for this project?",
                ("under 1000 dollars", "about 8000 dollars", "over 30000 dollars"),
            ),
            (
                "Ownership constraints",
                3,
                "Do you own the place or rent it?",
                ("I own it", "I rent it", "I rent but the landlord allows changes"),
            ),
            (
                "Space size",
                2,
                "How big is the space?",
                ("about 6 square metres", "about 20 square metres", "over 50 square metres"),
            ),
            (
                "Design style",
                2,
                "Which design style do you like?",
                ("minimalist", "rustic", "mid-century modern"),
            ),
            (
                "DIY or professional",
                2,
                "Will you do the work yourself or hire professionals?",
                ("all do-it-yourself", "hire a contractor", "a mix of both"),
            ),
            (
                "Timeline",
                1,
                "When should the work be finished?",
                ("within a month", "before the summer", "no hurry"),
            ),
        ),
    ),
}


def turn_reward(importances: Sequence[int]) -> float:
    """Reward for one question that newly covers details of these importances."""
    if not importances:
        return 0.0
    extra = len(importances) - 1
    return round(max(0.0, IMPORTANCE_REWARD[max(importances)] - EXTRA_DETAIL_PENALTY * extra), 10)


def _user_prompt(category: str, request: str) -> str:
    return (
        f"Task category: {category}\nThe request: {request}\n"
        "Ask clarifying questions to find out all the missing details of this request."
    )


def _make_task(task_id: str, category: str, request: str, details: list[dict[str, Any]]) -> Task:
    return Task(
        task_id=task_id,
        env="intention",
        messages=[
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": _user_prompt(category, request)},
        ],
        hidden={"category": category, "task": request, "details": details},
    )


def generate_tasks(seed: int = 0, n_train: int = 250, n_test: int = 50) -> dict[str, list[Task]]:
    """The built-in task set: every (template, filler) request once, with 3-5 sampled details each."""
    rng = random.Random(seed)
    pool: list[tuple[str, str, tuple[_Detail, ...]]] = []
    for category, (templates, fillers, details) in _DOMAINS.items():
        pool.extend((category, t.format(x=f), details) for t in templates for f in fillers)
    if n_train + n_test > len(pool):
        raise ValueError(f"only {len(pool)} distinct requests; asked for {n_train + n_test}")
    rng.shuffle(pool)
    tasks = []
    for i, (category, request, details) in enumerate(pool[: n_train + n_test]):
        chosen = sorted(rng.sample(range(len(details)), rng.randint(3, 5)))
        hidden = [
            {
                "description": details[j][0],
                "importance": details[j][1],
                "inquiry": details[j][2],
                "options": list(details[j][3]),
                "answer": rng.choice(details[j][3]),
            }
            for j in chosen
        ]
        tasks.append(_make_task(f"intention-gen-{seed}-{i:04d}", category, request, hidden))
    return {"train": tasks[:n_train], "test": tasks[n_train:]}


def _details_from_in3(record: dict[str, Any]) -> list[dict[str, Any]]:
    details = []
    for d in record.get("missing_details") or []:
        options = [str(o).strip() for o in d.get("options") or []]
        details.append(
            {
                "description": str(d["description"]).strip(),
                "importance": min(3, max(1, int(d.get("importance", 2)))),
                "inquiry": str(d.get("inquiry") or d["description"]).strip(),
                "options": options,
                "answer": str(d.get("answer") or (options[0] if options else "no preference")),
            }
        )
    return details


@ENVIRONMENTS.register("intention")
class IntentionEnv(Environment):
    """Vague request with hidden missing details; the user answers the details a question covers."""

    score_mode = "sum"

    def __init__(
        self,
        *,
        max_turns: int = 16,
        simulator: Literal["offline", "llm"] = "offline",
        llm: LLMConfig | None = None,
        matcher: SemanticMatcher | None = None,
        cover_threshold: float | None = None,
        max_chars: int = 4000,
    ) -> None:
        self.max_turns = max_turns
        self.simulator = simulator
        self.client = simulator_client(simulator, llm)
        self.matcher = matcher or SemanticMatcher()
        self.cover_threshold = cover_threshold
        self.max_chars = max_chars
        self.task: Task | None = None

    # -- tasks -----------------------------------------------------------------------------------------
    @classmethod
    def load_tasks(cls, split: str, seed: int = 0) -> list[Task]:
        """The built-in generated tasks of `split` ("train" or "test")."""
        tasks = generate_tasks(seed)
        if split not in tasks:
            raise ValueError(f"unknown split {split!r}; expected 'train' or 'test'")
        return tasks[split]

    @classmethod
    def from_userrl(cls, path: str | Path) -> list[Task]:
        """Tasks from UserRL's IN3 JSON (`intention_train.json`) or verl parquet (`intention_train.parquet`).

        Parquet rows name only the missing details; their importances, inquiries and options are joined
        by id from `intention_train.json` beside the parquet file when it exists (else importance 2).
        """
        path = Path(path)
        records = read_records(path)
        if path.suffix.lower() != ".parquet":
            return [
                _make_task(str(r["id"]), str(r.get("category", "")), str(r["task"]), _details_from_in3(r))
                for r in records
            ]
        sibling = path.with_name("intention_train.json")
        by_id = {str(r["id"]): r for r in read_records(sibling)} if sibling.is_file() else {}
        tasks = []
        for row in records:
            meta = row["reward_model"]
            if str(meta["id"]) in by_id:
                details = _details_from_in3(by_id[str(meta["id"])])
            else:
                names = [s.strip() for s in str(meta["ground_truth"]).split(",") if s.strip()]
                details = _details_from_in3({"missing_details": [{"description": n} for n in names]})
            task = _make_task(str(meta["id"]), str(meta.get("category", "")), str(meta["task"]), details)
            task.messages = [{"role": m["role"], "content": m["content"]} for m in row["prompt"]]
            tasks.append(task)
        return tasks

    @staticmethod
    def to_record(task: Task) -> dict[str, Any]:
        """The IN3 JSON record of a task (what `from_userrl` reads back)."""
        hidden = task.hidden
        return {
            "id": task.task_id,
            "category": hidden["category"],
            "task": hidden["task"],
            "missing_details": [
                {
                    "description": d["description"],
                    "importance": str(d["importance"]),
                    "inquiry": d["inquiry"],
                    "options": d["options"],
                    "answer": d["answer"],
                }
                for d in hidden["details"]
            ],
        }

    @staticmethod
    def max_score(task: Task) -> float:
        """The best achievable score: every detail asked about separately."""
        return round(sum(IMPORTANCE_REWARD[d["importance"]] for d in task.hidden["details"]), 10)

    # -- episode ---------------------------------------------------------------------------------------
    def reset(self, task: Task) -> list[dict[str, str]]:
        self.task = task
        self.covered: set[int] = set()
        self.turns = 0
        self.history: list[dict[str, str]] = []
        return [dict(m) for m in task.messages]

    @property
    def _hidden(self) -> dict[str, Any]:
        if self.task is None:
            raise RuntimeError("call reset() before step()")
        return self.task.hidden

    def step(self, action: str) -> StepResult:
        details = self._hidden["details"]
        self.turns += 1
        out_of_turns = self.turns >= self.max_turns
        parsed = parse_action(action, choices=CHOICES, max_chars=self.max_chars)
        if isinstance(parsed, str):
            return StepResult(parsed, 0.0, out_of_turns, {"invalid": True})
        try:
            new = self._judge(parsed) - self.covered
            reply = self._reply(parsed, sorted(new))
        except SimulatorUnavailable as err:
            return failed_step(str(err))
        details = self._hidden["details"]
        self.covered |= new
        reward = turn_reward([details[i]["importance"] for i in new])
        done = len(self.covered) == len(details) or out_of_turns
        info = {"covered": sorted(new), "remaining": len(details) - len(self.covered)}
        return StepResult(reply, reward, done, info)

    # -- offline judge and user ------------------------------------------------------------------------
    def _segments(self, question: str) -> list[str]:
        parts = re.split(r"[?!;\n]+|\.\s+", question)
        return [p.strip(" ,.") for p in parts if re.search(r"\w", p)]

    def _offline_cover(self, question: str) -> set[int]:
        details = self._hidden["details"]
        texts = [text for d in details for text in (d["inquiry"], d["description"])]
        threshold = self.cover_threshold
        if threshold is None:
            threshold = COVER_THRESHOLDS[self.matcher.backend]
        covered = set()
        for segment in self._segments(question):
            scores = self.matcher.similarities(segment, texts)
            per_detail = [max(scores[2 * i], scores[2 * i + 1]) for i in range(len(details))]
            best = max(range(len(details)), key=per_detail.__getitem__)
            if per_detail[best] >= threshold:
                covered.add(best)
        return covered

    def _judge(self, action: Action) -> set[int]:
        if self.client is None:
            return self._offline_cover(action.content)
        details = self._hidden["details"]
        listing = "\n".join(
            f"{i + 1}. {d['description']} (e.g. {d['inquiry']})" for i, d in enumerate(details)
        )
        prompt = JUDGE_PROMPT.format(
            instructions="Decide which of the numbered missing details the assistant's question asks about. "
            "A detail counts only if the question clearly asks for it.",
            reference=f"Request: {self._hidden['task']}\nMissing details:\n{listing}",
            candidate=action.content,
            answer_format="a JSON list of the detail numbers it asks about, e.g. [1, 3], or [] if none",
        )
        reply = self.client.chat([{"role": "user", "content": prompt}])
        found = re.search(r"\[[^\]]*\]", reply)
        if found is None:
            raise SimulatorUnavailable(f"the judge's reply has no list: {reply[:200]!r}")
        try:
            numbers = json.loads(found.group(0))
        except ValueError:
            raise SimulatorUnavailable(f"the judge's reply is not a JSON list: {reply[:200]!r}") from None
        return {n - 1 for n in numbers if isinstance(n, int) and 1 <= n <= len(details)}

    def _reply(self, action: Action, new: list[int]) -> str:
        details = self._hidden["details"]
        if self.client is None:
            if not new:
                return "I don't have anything specific in mind about that."
            return " ".join(f"{details[i]['description']}: {details[i]['answer']}." for i in new)
        system = USER_SIMULATOR_PROMPT.format(
            scenario=f"You asked an assistant for help with this request: {self._hidden['task']}",
            hidden="\n".join(f"- {d['description']}: {d['answer']}" for d in details),
            rules="- When asked about one of these details, give your answer for it.\n"
            "- When asked about anything else, say you have no particular preference.",
        )
        self.history += [{"role": "user", "content": action.content}]
        reply = self.client.chat([{"role": "system", "content": system}, *self.history])
        self.history.append({"role": "assistant", "content": reply})
        return reply
