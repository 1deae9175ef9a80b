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
