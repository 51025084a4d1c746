"""Downloads: the leaderboard as CSV or JSON, and one submission's results as JSON."""

import csv
import io
import re

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from server.api.deps import BoardDep, NowDep, SessionDep, SubmissionId
from server.api.errors import FieldError
from server.api.presenters import present_submission
from server.api.schemas import Leaderboard, SubmissionPublic
from server.state.submissions import get_submission
from worker.engine.protocol import COLUMN_METRICS

router = APIRouter(prefix="/export", tags=["exports"])

# OWASP's CSV injection advice: a text cell starting with one of these is read as a formula
# by spreadsheets, so it gets a leading single quote. Numbers are written as numbers.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cell: object) -> object:
    """A CSV cell a spreadsheet shows as text, never evaluates."""
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS):
        return "'" + cell
    return cell


def _filename(board: Leaderboard, extension: str) -> str:
    track = board.track if board.radius is None else f"{board.track}-r{board.radius:g}"
    suite = re.sub(r"[^A-Za-z0-9_.-]", "_", board.suite)  # header-safe, whatever was asked
    return f"leaderboard-{suite}-{track}.{extension}"


def _attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}


@router.get("/leaderboard.json", response_model=Leaderboard)
def leaderboard_json(board: BoardDep) -> JSONResponse:
    """The leaderboard as a JSON file (the same shape as ``/api/leaderboard``)."""
    return JSONResponse(board.model_dump(mode="json"), headers=_attachment(_filename(board, "json")))


@router.get("/leaderboard.csv", response_class=Response)
def leaderboard_csv(board: BoardDep) -> Response:
    """The leaderboard as CSV: one row per entry, accuracies as fractions with 95% intervals
    (a final board adds public_rank and rank_change after rank); then one row per disqualified
    team, without rank or figures, with the organiser's reason. ``?competition=&phase=`` as
    ``/api/leaderboard``: a final board before its reveal is refused (404) but to the admin."""
    return Response(
        leaderboard_table(board),
        media_type="text/csv; charset=utf-8",
        headers=_attachment(_filename(board, "csv")),
    )


def leaderboard_table(board: Leaderboard) -> str:
    out = io.StringIO()
    # RFC 4180 line ends: a cell holding a lone CR or LF is then always quoted.
    writer = csv.writer(out, lineterminator="\r\n")
    # A final board gives each team's public rank and its change just after the final rank.
    shake_up = ["public_rank", "rank_change"] if board.final else []
    header = [
        "rank",
        *shake_up,
        "team",
        "baseline",
        "submission_id",
        "score",
        "score_ci95_low",
        "score_ci95_high",
        "tied_with_above",
    ]
    for name in COLUMN_METRICS:
        header += [name, f"{name}_ci95_low", f"{name}_ci95_high"]
    header += ["sigma", "submissions", "submitted_at", "flags", "disqualified_reason"]
    writer.writerow(header)
    for row in board.rows:
        score_ci = row.score_ci95 or ("", "")
        changes = [row.public_rank, row.rank_change] if board.final else []
        line = [
            "" if row.rank is None else row.rank,
            *("" if value is None else value for value in changes),
            row.team,
            str(row.baseline).lower(),
            row.submission_id,
            row.score,
            *score_ci,
            str(row.tied).lower(),
        ]
        for name in COLUMN_METRICS:
            low, high = row.ci95.get(name, ("", ""))
            value = getattr(row, name)
            line += ["" if value is None else value, low, high]
        line += [
            "" if row.sigma is None else row.sigma,
            row.submissions,
            row.submitted_at.isoformat(),
            ";".join(f.code for f in row.flags),
            "",
        ]
        writer.writerow([neutralise(cell) for cell in line])
    for entry in board.disqualified:
        line = [""] * len(header)
        line[header.index("team")] = entry.team
        line[-1] = entry.reason
        writer.writerow([neutralise(cell) for cell in line])
    return out.getvalue()


@router.get("/submissions/{submission_id}.json", response_model=SubmissionPublic)
def submission_json(submission_id: SubmissionId, session: SessionDep, now: NowDep) -> JSONResponse:
    """One submission's public record and full results, as a JSON file (its final-phase
    evaluation once the final results are revealed)."""
    submission = get_submission(session=session, submission_id=submission_id)
    if submission is None:
        raise FieldError(404, f"Submission {submission_id} not found.")
    body = present_submission(session, submission, owner=False, now=now).model_dump(mode="json")
    return JSONResponse(body, headers=_attachment(f"submission-{submission_id}.json"))
