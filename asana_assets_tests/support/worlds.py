"""Changes to a simulated world that several tests apply between two syncs."""


def change_the_world(world):
    """What a busy day does: creates, edits, moves, completes, reopens, deletes, comments,
    deactivates a user and grants an admin."""
    truth = world.ground_truth()
    admin = world.default_user
    open_tasks = [t for t in truth["tasks"] if not t["completed"] and t["memberships"] and not t["parent"]]
    done_tasks = [t for t in truth["tasks"] if t["completed"] and t["memberships"] and not t["parent"]]
    project = open_tasks[0]["memberships"][0]["project"]["gid"]
    sections = [s["gid"] for s in truth["sections"] if s["project"]["gid"] == project]
    new = world.create_task("Created between syncs", project=project, section=sections[0], actor=admin)
    world.create_task("A subtask of it", parent=new, actor=admin)
    world.update_task(open_tasks[1]["gid"], name="Renamed between syncs", actor=admin)
    moved = next(t for t in open_tasks[2:] if t["memberships"][0]["project"]["gid"] == project)
    world.move_task_to_section(moved["gid"], sections[-1], actor=admin)
    world.complete_task(open_tasks[3]["gid"], actor=admin)
    world.reopen_task(done_tasks[0]["gid"], actor=admin)
    world.add_comment(open_tasks[4]["gid"], "Looks good", actor=admin)
    parent = next(t for t in truth["tasks"] if t["num_subtasks"] and not t["parent"] and t["memberships"])
    world.delete_task(parent["gid"], actor=admin)
    member = next(m for m in truth["workspace_memberships"] if m["is_active"] and not m["is_admin"])
    world.deactivate_user(member["user"]["gid"])
    other = next(m for m in truth["workspace_memberships"]
                 if m["is_active"] and not m["is_admin"] and m["gid"] != member["gid"])
    world.set_workspace_admin(other["user"]["gid"], other["workspace"]["gid"])
    return parent["gid"]


def add_custom_fields(world, project, tasks, actor):
    """One custom field of each type on ``project``, each set (and the enum changed) on ``tasks``;
    returns the fields by type."""
    workspace = world.objects[project].workspace if isinstance(project, str) else project.workspace
    fields = {
        "text": world.add_custom_field(workspace, "Ticket ref", "text"),
        "number": world.add_custom_field(workspace, "Risk score", "number", precision=1),
        "enum": world.add_custom_field(workspace, "Type", "enum", enum_options=["Bug", "Change"]),
        "multi_enum": world.add_custom_field(workspace, "Systems", "multi_enum", enum_options=["API", "Web"]),
        "date": world.add_custom_field(workspace, "Go-live", "date"),
        "people": world.add_custom_field(workspace, "Reviewers", "people"),
    }
    values = {"text": "CHG-1", "number": 4, "enum": "Bug", "multi_enum": ["API", "Web"],
              "date": "2026-06-10", "people": [actor]}
    for kind, field in fields.items():
        world.add_custom_field_setting(project, field, is_important=kind == "enum")
        for task in tasks:
            world.set_custom_field(task, field, values[kind], actor=actor)
    for task in tasks:
        world.set_custom_field(task, fields["enum"], "Change", actor=actor)
    return fields
